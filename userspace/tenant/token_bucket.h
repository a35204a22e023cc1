// Lock-free token bucket for per-tenant QPS limits.
//
// Implemented as GCRA (the "virtual scheduling" form of a token bucket): one atomic holds the
// theoretical arrival time `tat`, the instant at which the bucket would be empty again if no
// more tokens were taken. With interval = 1 s / rate and tolerance = burst * interval:
//   tokens available at `now` = (tolerance - max(0, tat - now)) / interval      (0 .. burst)
//   take one:  next = max(tat, now) + interval; allowed iff next - now <= tolerance; tat = next.
// Taking is one CAS loop, so concurrent takers on several threads never over-admit.
// Time is passed in (helios::Nanos, monotonic) so tests drive it; precision is 1 ns per token
// interval (rates up to 1e9/s; the interval is rounded to whole nanoseconds).
// A rate <= 0 means unlimited. Burst is clamped to at least 1 token.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>

#include "common/clock.h"

namespace helios::tenant {

class TokenBucket {
 public:
  TokenBucket() = default;  // unlimited until configured
  TokenBucket(double rate, double burst, Nanos now) { configure(rate, burst, now); }
  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  // Sets rate (tokens/s) and burst (capacity). Keeps the tokens currently in the bucket, capped
  // at the new burst; a bucket that was unlimited starts full.
  void configure(double rate, double burst, Nanos now) {
    if (!(rate > 0)) {
      interval_.store(0, std::memory_order_relaxed);
      tolerance_.store(0, std::memory_order_relaxed);
      tat_.store(now, std::memory_order_relaxed);
      return;
    }
    double new_burst = std::clamp(burst, 1.0, kMaxBurst);
    double fill = unlimited() ? new_burst : std::min(available(now), new_burst);
    int64_t interval = std::max<int64_t>(1, std::llround(std::min(1e9 / rate, kMaxIntervalNs)));
    int64_t tolerance = std::llround(new_burst * double(interval));
    interval_.store(interval, std::memory_order_relaxed);
    tolerance_.store(tolerance, std::memory_order_relaxed);
    tat_.store(now + std::llround((new_burst - fill) * double(interval)),
               std::memory_order_relaxed);
  }

  // Takes one token if one is available at `now`.
  bool try_take(Nanos now) {
    int64_t interval = interval_.load(std::memory_order_relaxed);
    if (interval == 0) return true;
    int64_t tolerance = tolerance_.load(std::memory_order_relaxed);
    int64_t tat = tat_.load(std::memory_order_relaxed);
    for (;;) {
      int64_t next = std::max(tat, now) + interval;
      if (next - now > tolerance) return false;
      if (tat_.compare_exchange_weak(tat, next, std::memory_order_relaxed)) return true;
    }
  }

  // How long from `now` until try_take can succeed (0 if it can now).
  Nanos wait_time(Nanos now) const {
    int64_t interval = interval_.load(std::memory_order_relaxed);
    if (interval == 0) return 0;
    int64_t tolerance = tolerance_.load(std::memory_order_relaxed);
    int64_t tat = tat_.load(std::memory_order_relaxed);
    return std::max<int64_t>(0, std::max(tat, now) + interval - tolerance - now);
  }

  // Tokens in the bucket at `now` (fractional); a large number when unlimited.
  double available(Nanos now) const {
    int64_t interval = interval_.load(std::memory_order_relaxed);
    if (interval == 0) return kMaxBurst;
    int64_t tolerance = tolerance_.load(std::memory_order_relaxed);
    int64_t backlog = std::max<int64_t>(0, tat_.load(std::memory_order_relaxed) - now);
    return std::max(0.0, double(tolerance - backlog) / double(interval));
  }

  bool unlimited() const { return interval_.load(std::memory_order_relaxed) == 0; }
  // Effective configuration (after rounding), 0 when unlimited.
  double rate() const {
    int64_t interval = interval_.load(std::memory_order_relaxed);
    return interval == 0 ? 0.0 : 1e9 / double(interval);
  }
  double burst() const {
    int64_t interval = interval_.load(std::memory_order_relaxed);
    return interval == 0 ? 0.0 : double(tolerance_.load(std::memory_order_relaxed)) / interval;
  }

 private:
  static constexpr double kMaxBurst = 1e6;        // keeps burst * interval far from int64 overflow
  static constexpr double kMaxIntervalNs = 1e12;  // rates below 0.001/s are treated as 0.001/s

  std::atomic<int64_t> tat_{0};
  std::atomic<int64_t> interval_{0};   // ns per token; 0 = unlimited
  std::atomic<int64_t> tolerance_{0};  // burst * interval, ns
};

static_assert(sizeof(TokenBucket) <= 32);
static_assert(std::atomic<int64_t>::is_always_lock_free);

}  // namespace helios::tenant
