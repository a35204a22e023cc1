// Streaming framer for typed PostgreSQL messages (1 type byte + int32 length + body).
//
// The relay never needs whole messages: it decides what to do with a message from its header
// and the first few body bytes (a ReadyForQuery status, a Query's first keyword, a statement
// name), then streams the rest. So for each message the framer gathers a *prefix* (the 5-byte
// header plus as many body bytes as the handler asks for, by type) and reports the rest of the
// body as ranges of the input. A prefix that straddles two input buffers is copied into a small
// scratch area; otherwise it points straight into the input. No I/O; at most one scratch
// allocation per connection, kept while the connection is busy and released when it idles.
//
// Handler concept:
//   uint32_t prefix_wanted(char type, uint32_t length);  // body bytes to capture, <= kMaxPrefixBody
//   void on_message(const FramedMessage& m);             // header + prefix gathered
//   void on_body(uint32_t offset, uint32_t n);           // more of the current message's body
//   void on_message_end();                               // current message fully seen
//   void on_error(const char* what);                     // unframeable input; framer stops
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>

namespace helios::pg {

// Largest prefix a handler may ask for: enough for a whole Parse of a long query. Only a prefix
// that straddles input buffers is copied, into scratch that grows as needed.
constexpr uint32_t kMaxPrefixBody = 1024 * 1024;
constexpr uint32_t kHeaderSize = 5;

struct FramedMessage {
  char type;
  uint32_t length;        // the length field: body + 4
  const uint8_t* prefix;  // header + captured body bytes, contiguous
  uint32_t prefix_len;    // 5 + captured body bytes
  bool in_place;          // prefix points into the current input at offset `offset`
  uint32_t offset;        // valid when in_place
  uint32_t body_left;     // body bytes still to come after the prefix
  uint32_t body_len() const { return length - 4; }
  const uint8_t* body() const { return prefix + kHeaderSize; }
  uint32_t captured() const { return prefix_len - kHeaderSize; }
  bool complete() const { return body_left == 0; }
};

class StreamFramer {
 public:
  // True when no message is partially seen: the stream can be handed to another peer here.
  bool at_boundary() const { return want_ == 0 && body_left_ == 0 && !failed_; }
  bool failed() const { return failed_; }
  void reset() {
    want_ = have_ = 0;
    body_left_ = 0;
    failed_ = false;
  }
  // Frees the scratch area (call when the connection goes idle).
  void release_scratch() {
    if (at_boundary()) {
      scratch_.reset();
      scratch_cap_ = 0;
    }
  }
  bool holds_scratch() const { return scratch_ != nullptr; }

  template <typename Handler>
  void feed(const uint8_t* data, uint32_t len, Handler& h) {
    uint32_t pos = 0;
    while (pos < len && !failed_) {
      if (body_left_ > 0) {
        uint32_t n = body_left_ < len - pos ? body_left_ : len - pos;
        h.on_body(pos, n);
        body_left_ -= n;
        pos += n;
        if (body_left_ == 0) h.on_message_end();
        continue;
      }
      // At a message start, or gathering a straddling prefix.
      if (want_ == 0) {
        // Fast path: the header (and the prefix the handler wants) lies inside this input.
        if (len - pos >= kHeaderSize) {
          char type = char(data[pos]);
          uint32_t length = read_len(data + pos + 1);
          if (length < 4) return fail(h, "message length field below 4");
          uint32_t body = length - 4;
          uint32_t cap = clamp_prefix(h.prefix_wanted(type, length), body);
          uint32_t total = kHeaderSize + cap;
          if (len - pos >= total) {
            FramedMessage m{type, length, data + pos, total, true, pos, body - cap};
            body_left_ = body - cap;
            h.on_message(m);
            pos += total;
            if (body_left_ == 0) h.on_message_end();
            continue;
          }
          want_ = total;  // prefix straddles: gather into scratch
        } else {
          want_ = kHeaderSize;  // header straddles: gather it first
        }
        have_ = 0;
        reserve_scratch(want_);
      }
      uint32_t gap = want_ - have_;
      uint32_t n = gap < len - pos ? gap : len - pos;
      std::memcpy(scratch_.get() + have_, data + pos, n);
      have_ += n;
      pos += n;
      if (have_ < want_) break;
      if (want_ == kHeaderSize) {  // header complete: now we know how much prefix to gather
        uint32_t length = read_len(scratch_.get() + 1);
        if (length < 4) return fail(h, "message length field below 4");
        uint32_t cap = clamp_prefix(h.prefix_wanted(char(scratch_[0]), length), length - 4);
        if (cap > 0) {
          want_ = kHeaderSize + cap;
          reserve_scratch(want_);
          continue;
        }
      }
      uint32_t length = read_len(scratch_.get() + 1);
      uint32_t cap = want_ - kHeaderSize;
      FramedMessage m{char(scratch_[0]), length, scratch_.get(), want_, false, 0, length - 4 - cap};
      body_left_ = length - 4 - cap;
      want_ = have_ = 0;
      h.on_message(m);
      if (body_left_ == 0) h.on_message_end();
    }
  }

  static uint32_t read_len(const uint8_t* p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
  }

 private:
  static uint32_t clamp_prefix(uint32_t wanted, uint32_t body) {
    if (wanted > kMaxPrefixBody) wanted = kMaxPrefixBody;
    return wanted < body ? wanted : body;
  }
  template <typename Handler>
  void fail(Handler& h, const char* what) {
    failed_ = true;
    h.on_error(what);
  }

  void reserve_scratch(uint32_t n) {
    if (scratch_ && scratch_cap_ >= n) return;
    uint32_t cap = n < 256 ? 256 : n;
    std::unique_ptr<uint8_t[]> next(new uint8_t[cap]);
    if (scratch_ && have_) std::memcpy(next.get(), scratch_.get(), have_);
    scratch_ = std::move(next);
    scratch_cap_ = cap;
  }

  std::unique_ptr<uint8_t[]> scratch_;
  uint32_t scratch_cap_ = 0;
  uint32_t body_left_ = 0;
  uint32_t want_ = 0;  // prefix bytes being gathered into scratch (0 = not gathering)
  uint32_t have_ = 0;
  bool failed_ = false;
};

}  // namespace helios::pg
