// Workers that follow the load (proxy/load_governor.h): one worker until the awake ones are busy,
// one more per sustained overload up to the ceiling, one fewer once the rest would have room,
// and no flapping in between.
#include <doctest/doctest.h>

#include <vector>

#include "proxy/load_governor.h"

using helios::proxy::LoadGovernor;
using helios::proxy::LoadGovernorSettings;

namespace {
LoadGovernorSettings two_of(uint32_t max) {
  LoadGovernorSettings s;
  s.max_workers = max;
  s.busy_target = 0.7;
  s.down_fraction = 0.5;
  s.up_periods = 2;
  s.down_periods = 3;
  return s;
}
}  // namespace

TEST_CASE("a light load keeps one worker awake however many are allowed") {
  LoadGovernor g(two_of(4));
  std::vector<double> busy{0.4, 0.0, 0.0, 0.0};
  for (int i = 0; i < 20; ++i) CHECK(g.observe(busy) == 1);
}

TEST_CASE("a sustained overload wakes one more worker per step, up to the ceiling") {
  LoadGovernor g(two_of(3));
  std::vector<double> busy{0.9, 0.9, 0.9};
  CHECK(g.observe(busy) == 1);  // one period over the target is not enough
  CHECK(g.observe(busy) == 2);
  CHECK(g.observe(busy) == 2);
  CHECK(g.observe(busy) == 3);
  for (int i = 0; i < 5; ++i) CHECK(g.observe(busy) == 3);  // the ceiling
}

TEST_CASE("a single busy period between quiet ones does not add a worker") {
  LoadGovernor g(two_of(2));
  std::vector<double> hot{0.95, 0.0}, cool{0.3, 0.0};
  for (int i = 0; i < 10; ++i) {
    CHECK(g.observe(hot) == 1);
    CHECK(g.observe(cool) == 1);
  }
}

TEST_CASE("workers are parked only once the others would have room, after a wait") {
  LoadGovernor g(two_of(2));
  std::vector<double> hot{0.9, 0.9};
  g.observe(hot);
  REQUIRE(g.observe(hot) == 2);
  // 0.5 + 0.4 = 0.9 would put one worker at 0.9: over the target, so both stay awake.
  std::vector<double> mid{0.5, 0.4};
  for (int i = 0; i < 10; ++i) CHECK(g.observe(mid) == 2);
  // 0.2 + 0.1 = 0.3 fits one worker under 0.5 x 0.7 = 0.35: parked after 3 such periods.
  std::vector<double> low{0.2, 0.1};
  CHECK(g.observe(low) == 2);
  CHECK(g.observe(low) == 2);
  CHECK(g.observe(low) == 1);
  CHECK(g.observe(low) == 1);
}

TEST_CASE("a reload that lowers the ceiling parks workers at once") {
  LoadGovernor g(two_of(4));
  std::vector<double> hot{1, 1, 1, 1};
  for (int i = 0; i < 8; ++i) g.observe(hot);
  REQUIRE(g.active() == 4);
  g.set_settings(two_of(2));
  CHECK(g.active() == 2);
  g.set_settings(two_of(0));  // a ceiling of 0 still means one worker
  CHECK(g.active() == 1);
}

TEST_CASE("busy fractions out of range are clamped, not trusted") {
  LoadGovernor g(two_of(2));
  std::vector<double> odd{-3.0, 50.0};
  for (int i = 0; i < 5; ++i) CHECK(g.observe(odd) == 1);  // worker 0's -3 reads as idle
}
