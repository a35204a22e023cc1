#include "datapath/splice_continuation.h"

#include <cstring>

namespace helios::datapath {

SpliceContinuation::SpliceContinuation(const splice_frame& at) {
  if (at.hdr_have > 0 && at.hdr_have < 5) {
    std::memcpy(hdr_, at.hdr, at.hdr_have);
    hdr_have_ = at.hdr_have;
    state_ = State::kHeader;
    interrupted_ = true;
  } else if (at.msg_left > 0) {
    // The kernel keeps the last complete header in the frame: the interrupted message's.
    std::memcpy(hdr_, at.hdr, 5);
    body_left_ = at.msg_left;
    uint32_t body = length() >= 4 ? length() - 4 : 0;
    body_seen_ = body > at.msg_left ? body - at.msg_left : 0;  // forwarded before the hand-back
    if (at.peek_have > 0) {  // the kernel looked at the first body byte
      have_first_ = true;
      first_ = at.peek[0];
    }
    state_ = State::kBody;
    interrupted_ = true;
  }
}

uint32_t SpliceContinuation::length() const {
  return (uint32_t(hdr_[1]) << 24) | (uint32_t(hdr_[2]) << 16) | (uint32_t(hdr_[3]) << 8) | hdr_[4];
}

uint32_t SpliceContinuation::feed(const uint8_t* data, uint32_t len) {
  uint32_t pos = 0;
  if (state_ == State::kHeader) {
    while (pos < len && hdr_have_ < 5) hdr_[hdr_have_++] = data[pos++];
    if (hdr_have_ < 5) return pos;
    uint32_t l = length();
    body_left_ = l >= 4 ? l - 4 : 0;  // a bad length is the framer's problem, not ours
    state_ = body_left_ ? State::kBody : State::kDone;
  }
  if (state_ == State::kBody) {
    uint32_t n = body_left_ < len - pos ? body_left_ : len - pos;
    if (n > 0 && !have_first_ && body_seen_ == 0) {
      have_first_ = true;
      first_ = data[pos];
    }
    body_seen_ += n;
    body_left_ -= n;
    pos += n;
    if (body_left_ == 0) state_ = State::kDone;
  }
  return pos;
}

}  // namespace helios::datapath
