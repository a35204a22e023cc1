// The slice arithmetic of fleet leases (fleet/slice.*): the slices of live instances never sum
// past the limit, a slice never shrinks below its use, and idle units are spread.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "fleet/slice.h"

using namespace helios::fleet;

namespace {

struct Instance {
  double used = 0, want = 0, slice = 0;
};

// Renews instance i against the others, as the Lua script does.
void renew(std::vector<Instance>& fleet, size_t i, double limit, bool whole = true) {
  SliceInput in;
  in.limit = limit;
  in.used = fleet[i].used;
  in.want = fleet[i].want;
  in.live = uint32_t(fleet.size());
  in.whole_units = whole;
  for (size_t j = 0; j < fleet.size(); ++j) {
    if (j == i) continue;
    in.others_slices += fleet[j].slice;
    in.others_demand += std::max(fleet[j].used, fleet[j].want);
  }
  fleet[i].slice = grant_slice(in);
}

double sum(const std::vector<Instance>& fleet) {
  double s = 0;
  for (const auto& f : fleet) s += f.slice;
  return s;
}

}  // namespace

TEST_CASE("an idle fleet spreads the limit and never grants past it") {
  std::vector<Instance> fleet(3);
  for (int round = 0; round < 5; ++round)
    for (size_t i = 0; i < fleet.size(); ++i) {
      renew(fleet, i, 5);
      CHECK(sum(fleet) <= 5);
    }
  for (const auto& f : fleet) CHECK(f.slice >= 1);  // every instance can admit one at once
}

TEST_CASE("a waiting login gets the last unit within two rounds") {
  // 4 of 5 in use (2, 1, 1); the 5th login waits on instance 0.
  std::vector<Instance> fleet{{2, 2, 0}, {1, 1, 0}, {1, 1, 0}};
  for (int round = 0; round < 3; ++round)
    for (size_t i = 0; i < fleet.size(); ++i) renew(fleet, i, 5);
  fleet[0].want = 3;
  for (int round = 0; round < 2; ++round)
    for (size_t i = 0; i < fleet.size(); ++i) renew(fleet, i, 5);
  CHECK(fleet[0].slice == 3);
  CHECK(fleet[1].slice == 1);
  CHECK(fleet[2].slice == 1);
}

TEST_CASE("a slice never drops below its use while the others leave room") {
  std::vector<Instance> fleet{{4, 4, 0}, {0, 9, 0}};
  renew(fleet, 0, 5);
  renew(fleet, 1, 5);
  renew(fleet, 0, 5);
  CHECK(fleet[0].slice >= 4);
  CHECK(sum(fleet) <= 5);
}

TEST_CASE("an over-demanded rate is split by demand and the sum stays within the limit") {
  std::vector<Instance> fleet{{100, 125, 0}, {100, 125, 0}, {100, 125, 0}};
  for (int round = 0; round < 4; ++round)
    for (size_t i = 0; i < fleet.size(); ++i) {
      renew(fleet, i, 300, /*whole=*/false);
      CHECK(sum(fleet) <= 300 + 1e-9);
    }
  for (const auto& f : fleet) CHECK(f.slice == doctest::Approx(100).epsilon(0.01));
}

TEST_CASE("static shares while Redis is down sum within the limit") {
  CHECK(static_share(5, 3, true) == 1);
  CHECK(static_share(5, 1, true) == 5);
  CHECK(static_share(300, 3, false) == doctest::Approx(100));
  CHECK(static_share(5, 0, true) == 5);  // never seen anybody: the whole limit
}
