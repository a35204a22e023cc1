// A per-second budget for log lines that an attacker can provoke (failed logins, protocol
// violations, quota refusals): at most `per_second` lines in each one-second window; the rest
// are counted, and the first line of a later window reports how many were suppressed. Not
// thread-safe: one per worker thread.
#pragma once

#include <cstdint>

#include "common/clock.h"

namespace helios {

class RateLimiter {
 public:
  explicit RateLimiter(uint32_t per_second) : per_second_(per_second) {}

  // True when a line may be written now. *suppressed receives the lines suppressed since the
  // last allowed one (0 usually): write it with this line, then it is reset.
  bool allow(Nanos now, uint64_t* suppressed) {
    if (now - window_start_ >= kNanosPerSec || now < window_start_) {
      window_start_ = now;
      used_ = 0;
    }
    if (used_ >= per_second_) {
      ++suppressed_;
      return false;
    }
    ++used_;
    *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }
  uint64_t pending_suppressed() const { return suppressed_; }

 private:
  uint32_t per_second_;
  uint32_t used_ = 0;
  Nanos window_start_ = 0;
  uint64_t suppressed_ = 0;
};

}  // namespace helios
