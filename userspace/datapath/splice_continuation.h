// Where the bytes that come up to user space after the kernel forwarded part of a stream start,
// in message terms. The kernel records the framing position of the first passed-up byte
// (splice_sock_state.handback); when it is inside a message, the first bytes user space reads
// finish a message whose beginning already went to the peer. The worker must send those raw
// bytes to the peer, and only then feed its framer, which starts at a message boundary.
//
//   SpliceContinuation k(handback.frame);
//   uint32_t raw = k.feed(data, len);  // first `raw` bytes: rest of the interrupted message
//   relay raw bytes to the peer; if (k.done()) framer.feed(data + raw, len - raw, ...)
//
// k.type() says what that message was ('Z' with k.first_body_byte() = the status: the worker
// counts the ReadyForQuery the kernel did not).
#pragma once

#include <cstdint>

#include "helios/bpf_abi.h"

namespace helios::datapath {

class SpliceContinuation {
 public:
  SpliceContinuation() = default;  // at a boundary: nothing to skip
  explicit SpliceContinuation(const splice_frame& at);

  // Consumes the leading bytes of `data` that belong to the interrupted message; returns how
  // many (0..len). Call again with the next input while !done().
  uint32_t feed(const uint8_t* data, uint32_t len);
  bool done() const { return state_ == State::kDone; }

  char type() const { return char(hdr_[0]); }  // 0 when the stream was at a boundary
  bool interrupted() const { return interrupted_; }
  uint32_t length() const;  // the message's length field (valid once known)
  bool has_first_body_byte() const { return have_first_; }
  uint8_t first_body_byte() const { return first_; }

 private:
  enum class State { kHeader, kBody, kDone };
  State state_ = State::kDone;
  uint8_t hdr_[5] = {};
  uint8_t hdr_have_ = 0;
  uint32_t body_left_ = 0;
  uint32_t body_seen_ = 0;  // body bytes of the message before the hand-back point
  bool interrupted_ = false;
  bool have_first_ = false;
  uint8_t first_ = 0;
};

}  // namespace helios::datapath
