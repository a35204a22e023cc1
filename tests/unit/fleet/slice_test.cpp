// The slice arithmetic of fleet leases (fleet/slice.*): what live instances hold never sums past
// the limit, idle units are spread, and a small over-wanted limit rotates between instances.
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
void renew(std::vector<Instance>& fleet, size_t i, double limit, bool whole = true,
           bool other_waited_longer = false) {
  SliceInput in;
  in.limit = limit;
  in.used = fleet[i].used;
  in.want = fleet[i].want;
  in.live = uint32_t(fleet.size());
  in.rank = uint32_t(i);
  in.whole_units = whole;
  in.other_waited_longer = other_waited_longer;
  for (size_t j = 0; j < fleet.size(); ++j) {
    if (j == i) continue;
    in.others_held += whole ? std::max(fleet[j].slice, fleet[j].used) : fleet[j].slice;
    in.others_demand += std::max(fleet[j].used, fleet[j].want);
  }
  fleet[i].slice = grant_slice(in);
}

double sum(const std::vector<Instance>& fleet) {
  double s = 0;
  for (const auto& f : fleet) s += f.slice;
  return s;
}

double held(const std::vector<Instance>& fleet) {
  double s = 0;
  for (const auto& f : fleet) s += std::max(f.slice, f.used);
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

TEST_CASE("units nobody uses go to the instance that wants them, not kept as spares") {
  // A limit of 6, one connection on each of three idle instances: every slice is 2. Then
  // instance 0 admits its second and wants a third: the fleet would use 4 of 6, so the unit must
  // come to it. (Before: the free unit was rounded up on every instance, the others kept a spare
  // unit each and instance 0 stayed at 2 with two units unused in the fleet.)
  std::vector<Instance> fleet{{1, 1, 0}, {1, 1, 0}, {1, 1, 0}};
  for (int round = 0; round < 3; ++round)
    for (size_t i = 0; i < fleet.size(); ++i) renew(fleet, i, 6);
  CHECK(sum(fleet) == 6);
  fleet[0] = {2, 3, fleet[0].slice};
  for (int round = 0; round < 2; ++round)
    for (size_t i = 0; i < fleet.size(); ++i) {
      renew(fleet, i, 6);
      CHECK(held(fleet) <= 6);
    }
  CHECK(fleet[0].slice >= 3);
  CHECK(sum(fleet) <= 6);
  // Whatever the rank of the instance that wants more, the remainder of a free unit never
  // leaves it short: with one unit spare, one instance (by rank) holds it.
  std::vector<Instance> spare{{1, 1, 0}, {1, 1, 0}, {2, 3, 0}};
  for (int round = 0; round < 3; ++round)
    for (size_t i = 0; i < spare.size(); ++i) renew(spare, i, 6);
  CHECK(spare[2].slice >= 3);
  CHECK(sum(spare) == 6);
}

TEST_CASE("what instances hold never sums past the limit, even when a slice drops below use") {
  std::vector<Instance> fleet{{4, 4, 0}, {0, 9, 0}};
  renew(fleet, 0, 5);
  renew(fleet, 1, 5);
  CHECK(held(fleet) <= 5);
  renew(fleet, 0, 5);  // over-demanded: instance 0's part is below its use of 4
  CHECK(fleet[0].slice < 4);
  CHECK(held(fleet) <= 5);
  renew(fleet, 1, 5);  // nothing frees until instance 0's use drops
  CHECK(held(fleet) <= 5);
  fleet[0].used = 2;  // two leases ended on instance 0
  renew(fleet, 1, 5);
  CHECK(fleet[1].slice >= 2);
  CHECK(held(fleet) <= 5);
}

TEST_CASE("a max_active of 2 wanted by three busy instances rotates: nobody starves") {
  // Each instance always has waiters; an instance uses what its slice allows. The one that has
  // waited longest with nothing takes the next free unit (the Lua script's "since").
  std::vector<Instance> fleet{{0, 3, 0}, {0, 3, 0}, {0, 3, 0}};
  std::vector<int> turns(3, 0), waiting_since(3, 0);
  int clock = 0;
  for (int round = 0; round < 12; ++round)
    for (size_t i = 0; i < fleet.size(); ++i) {
      ++clock;
      if (fleet[i].used == 0 && waiting_since[i] == 0) waiting_since[i] = clock;
      bool older = false;
      for (size_t j = 0; j < fleet.size(); ++j)
        older = older || (j != i && waiting_since[j] && waiting_since[j] < waiting_since[i]);
      renew(fleet, i, 2, true, older);
      if (fleet[i].slice > 0) waiting_since[i] = 0;
      REQUIRE(held(fleet) <= 2);
      // Its running leases end within the interval; the slice then admits that many.
      fleet[i].used = fleet[i].slice;
      fleet[i].want = fleet[i].used + 3;
      if (fleet[i].slice > 0) ++turns[i];
    }
  // Turns are even (a unit changes hands at renewals, so not every renewal is a turn).
  for (int t : turns) CHECK(t >= 4);
  CHECK(*std::max_element(turns.begin(), turns.end()) -
            *std::min_element(turns.begin(), turns.end()) <=
        1);
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
