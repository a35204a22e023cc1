#include <doctest/doctest.h>

#include <atomic>
#include <barrier>
#include <thread>
#include <vector>

#include "tenant/token_bucket.h"

using namespace helios;
using namespace helios::tenant;

namespace {
int take_all(TokenBucket& b, Nanos now, int max_tries = 1000000) {
  int n = 0;
  while (n < max_tries && b.try_take(now)) ++n;
  return n;
}
}  // namespace

TEST_CASE("TokenBucket: burst is available at once, then one token per interval") {
  const Nanos t0 = 5 * kNanosPerSec;
  TokenBucket b(1000, 10, t0);  // 1 token per ms
  CHECK(take_all(b, t0) == 10);
  CHECK_FALSE(b.try_take(t0));
  CHECK(b.wait_time(t0) == kNanosPerMilli);
  CHECK_FALSE(b.try_take(t0 + kNanosPerMilli - 1));
  CHECK(b.try_take(t0 + kNanosPerMilli));
  CHECK_FALSE(b.try_take(t0 + kNanosPerMilli));
  CHECK(b.wait_time(t0 + kNanosPerMilli + 250 * kNanosPerMicro) == 750 * kNanosPerMicro);
  // 5.5 ms later: 5 whole tokens.
  CHECK(take_all(b, t0 + 6500 * kNanosPerMicro) == 5);
}

TEST_CASE("TokenBucket: exact admitted count over time") {
  SUBCASE("integer interval") {
    TokenBucket b(1000, 10, 0);
    int admitted = 0;
    for (Nanos t = 0; t <= 10 * kNanosPerSec; t += 100 * kNanosPerMicro) admitted += take_all(b, t);
    CHECK(admitted == 10 + 10000);
  }
  SUBCASE("a rate that is not a whole number of nanoseconds per token") {
    TokenBucket b(3, 2, 0);  // burst 2 so polling every 1 ms never finds the bucket full
    int admitted = 0;
    for (Nanos t = 0; t <= 100 * kNanosPerSec; t += kNanosPerMilli) admitted += take_all(b, t);
    CHECK(admitted == 2 + 300);
  }
  SUBCASE("a waiter that sleeps exactly wait_time always gets a token") {
    TokenBucket b(200, 5, 0);
    Nanos now = 0;
    int admitted = take_all(b, now);
    for (int i = 0; i < 1000; ++i) {
      now += b.wait_time(now);
      REQUIRE(b.try_take(now));
      ++admitted;
    }
    CHECK(admitted == 1005);
    CHECK(now == 1000 * (kNanosPerSec / 200));  // 200/s -> 1000 tokens after the burst take 5 s
  }
}

TEST_CASE("TokenBucket: refill after idle is capped at burst") {
  TokenBucket b(100, 20, 0);
  CHECK(take_all(b, 0) == 20);
  CHECK(b.available(0) == doctest::Approx(0));
  CHECK(b.available(100 * kNanosPerMilli) == doctest::Approx(10));
  CHECK(take_all(b, 3600 * kNanosPerSec) == 20);
  CHECK(b.wait_time(3600 * kNanosPerSec) == 10 * kNanosPerMilli);
}

TEST_CASE("TokenBucket: unlimited when rate is 0") {
  TokenBucket b;
  CHECK(b.unlimited());
  CHECK(take_all(b, 0, 100000) == 100000);
  CHECK(b.wait_time(0) == 0);
  b.configure(0, 10, 0);
  CHECK(b.unlimited());
}

TEST_CASE("TokenBucket: reconfigure keeps the current fill, capped at the new burst") {
  TokenBucket b(10, 10, 0);
  CHECK(take_all(b, 0, 4) == 4);
  CHECK(b.available(0) == doctest::Approx(6));

  b.configure(100, 20, 0);  // faster, bigger: the 6 tokens stay, refill is faster
  CHECK(b.rate() == doctest::Approx(100));
  CHECK(b.burst() == doctest::Approx(20));
  CHECK(b.available(0) == doctest::Approx(6));
  CHECK(b.available(50 * kNanosPerMilli) == doctest::Approx(11));

  b.configure(100, 3, 0);  // smaller burst caps it
  CHECK(take_all(b, 0) == 3);

  b.configure(0, 0, 0);  // unlimited
  CHECK(take_all(b, 0, 1000) == 1000);
  b.configure(50, 7, 0);  // limited again: starts full
  CHECK(take_all(b, 0) == 7);
}

TEST_CASE("TokenBucket: concurrent takers never over-admit") {
  constexpr int kThreads = 4, kPhases = 50, kTriesPerPhase = 200;
  TokenBucket b(1000, 20, 0);  // 20 at first, then 10 per 10 ms phase
  std::atomic<int> admitted{0};
  std::barrier sync(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int p = 0; p < kPhases; ++p) {
        sync.arrive_and_wait();
        Nanos now = p * 10 * kNanosPerMilli;
        int mine = 0;
        for (int i = 0; i < kTriesPerPhase; ++i) mine += b.try_take(now) ? 1 : 0;
        admitted.fetch_add(mine);
      }
    });
  for (auto& th : threads) th.join();
  CHECK(admitted.load() == 20 + 10 * (kPhases - 1));
}

TEST_CASE("TokenBucket fits in 32 bytes") {
  CHECK(sizeof(TokenBucket) <= 32);
}
