#include <doctest/doctest.h>

#include "common/rate_limiter.h"

using namespace helios;

TEST_CASE("RateLimiter: N lines a second, then a count of the suppressed ones") {
  RateLimiter rl(3);
  Nanos t = 1000 * kNanosPerSec;
  uint64_t sup = 99;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(rl.allow(t + i, &sup));
    CHECK(sup == 0);
  }
  for (int i = 0; i < 10; ++i) CHECK_FALSE(rl.allow(t + 10 + i, &sup));
  CHECK(rl.pending_suppressed() == 10);
  REQUIRE(rl.allow(t + kNanosPerSec, &sup));  // next window
  CHECK(sup == 10);
  REQUIRE(rl.allow(t + kNanosPerSec + 1, &sup));
  CHECK(sup == 0);
}
