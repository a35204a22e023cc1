#include <doctest/doctest.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "ops/metrics_window.h"
#include "proxy/metrics_counters.h"

using namespace helios;
using namespace helios::ops;
using namespace helios::proxy;

namespace {

std::map<std::string, uint64_t> errors_of(const MetricsCounters& c) {
  std::map<std::string, uint64_t> m;
  for (const auto& [code, n] : c.snapshot().errors) m[code] = n;
  return m;
}

std::string code_for(int i) {
  // 5 characters of [0-9A-Z], distinct for i < 36^2.
  const char* d = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  return std::string("XY") + d[i / 36 % 36] + d[i % 36] + "0";
}

}  // namespace

TEST_CASE("count_error counts each SQLSTATE under its own code") {
  MetricsCounters c;
  c.count_error("53300");
  c.count_error("53300");
  c.count_error("08P01");
  c.count_error("57P01");
  auto m = errors_of(c);
  CHECK(m.size() == 3);
  CHECK(m["53300"] == 2);
  CHECK(m["08P01"] == 1);
  CHECK(m["57P01"] == 1);
}

TEST_CASE("malformed SQLSTATEs go to other") {
  MetricsCounters c;
  c.count_error("");
  c.count_error("5330");
  c.count_error("533000");
  c.count_error("53p01");  // lower case is not a SQLSTATE
  c.count_error("53300");
  auto m = errors_of(c);
  CHECK(m["other"] == 4);
  CHECK(m["53300"] == 1);
  // "other" is listed last so the exported order is stable.
  CHECK(c.snapshot().errors.back().first == "other");
}

TEST_CASE("past kSqlstateSlots distinct codes, new codes are summed under other") {
  MetricsCounters c;
  const int n = int(MetricsCounters::kSqlstateSlots) + 10;
  for (int i = 0; i < n; ++i) c.count_error(code_for(i));
  auto m = errors_of(c);
  CHECK(m.size() == MetricsCounters::kSqlstateSlots + 1);
  CHECK(m["other"] == 10);
  // A code that already has a slot keeps counting there.
  c.count_error(code_for(0));
  CHECK(errors_of(c)[code_for(0)] == 2);
}

TEST_CASE("concurrent counting is exact") {
  MetricsCounters c;
  const int threads = 4, per = 20000;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < per; ++i) {
        c.count_error(i % 2 ? "53300" : code_for(t));  // threads race to claim slots too
        c.add_bytes(BytePath::kKernel, ByteDirection::kServerToClient, 3);
      }
    });
  for (auto& t : ts) t.join();
  auto m = errors_of(c);
  CHECK(m["53300"] == uint64_t(threads * per / 2));
  for (int t = 0; t < threads; ++t) CHECK(m[code_for(t)] == uint64_t(per / 2));
  auto s = c.snapshot();
  CHECK(s.bytes[size_t(BytePath::kKernel)][size_t(ByteDirection::kServerToClient)] ==
        uint64_t(3 * threads * per));
  CHECK(s.bytes[size_t(BytePath::kUserspace)][size_t(ByteDirection::kServerToClient)] == 0);
}

TEST_CASE("reloads are counted by result with the time of the successful ones") {
  MetricsCounters c;
  c.count_reload(true, 2 * kNanosPerMilli);
  c.count_reload(true, 3 * kNanosPerMilli);
  c.count_reload(false, 50 * kNanosPerMilli);
  auto s = c.snapshot();
  CHECK(s.reloads_ok == 2);
  CHECK(s.reloads_failed == 1);
  CHECK(s.reload_ns_total == 5 * kNanosPerMilli);
}

TEST_CASE("names of paths and directions") {
  CHECK(std::string(byte_path_name(BytePath::kKernel)) == "kernel");
  CHECK(std::string(byte_direction_name(ByteDirection::kClientToServer)) == "client_to_server");
}

TEST_CASE("CounterWindow: increase over the last window") {
  const Nanos min = 60 * kNanosPerSec, hour = 60 * min;
  CounterWindow w(/*origin=*/0, hour, min);
  w.observe(0, 0);
  // Younger than the window: everything since the start counts.
  w.observe(10 * min, 5);
  CHECK(w.increase(30 * min, 12) == 12);
  for (Nanos t = 11 * min; t <= 120 * min; t += min) w.observe(t, uint64_t(t / min));
  // At 120 min the counter is 120 and was 60 at 60 min.
  CHECK(w.increase(120 * min, 120) == 60);
  // Samples older than needed were dropped: about one window's worth stays.
  CHECK(w.samples() <= 62);
  // Samples closer than one step are ignored.
  size_t before = w.samples();
  w.observe(120 * min + kNanosPerSec, 500);
  CHECK(w.samples() == before);
}

TEST_CASE("CounterWindow: gaps fall back to the nearest sample it has") {
  const Nanos min = 60 * kNanosPerSec, hour = 60 * min;
  CounterWindow w(0, hour, min);
  w.observe(0, 0);
  w.observe(100 * min, 40);  // nothing sampled for 100 minutes
  // The newest sample at or before 70 min is the one at 0: an upper bound of the increase.
  CHECK(w.increase(130 * min, 50) == 50);
  // A counter never reports a negative increase.
  CHECK(w.increase(130 * min, 0) == 0);

  // Sampling started late (no sample as old as the window): the oldest one is the baseline.
  CounterWindow late(0, hour, min);
  late.observe(200 * min, 100);
  CHECK(late.increase(230 * min, 130) == 30);
}
