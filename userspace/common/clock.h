// Time: one monotonic nanosecond clock for the data path, and an injectable Clock for code
// whose behaviour depends on time (token buckets, timeouts) so tests can drive it.
#pragma once

#include <time.h>

#include <cstdint>

namespace helios {

using Nanos = int64_t;
constexpr Nanos kNanosPerMicro = 1000;
constexpr Nanos kNanosPerMilli = 1000 * 1000;
constexpr Nanos kNanosPerSec = 1000 * 1000 * 1000;

inline Nanos monotonic_now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return Nanos(ts.tv_sec) * kNanosPerSec + ts.tv_nsec;
}

// Interface for code that must be testable with a fake clock.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Nanos now() const = 0;
};

class MonotonicClock final : public Clock {
 public:
  Nanos now() const override { return monotonic_now(); }
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(Nanos start = 0) : now_(start) {}
  Nanos now() const override { return now_; }
  void advance(Nanos d) { now_ += d; }
  void set(Nanos t) { now_ = t; }

 private:
  Nanos now_;
};

}  // namespace helios
