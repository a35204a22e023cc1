// The slice arithmetic of fleet leases (docs/fleet.md), as a pure function. The Lua script in
// lease_script.cpp runs the same steps atomically inside Redis; unit tests pin this one.
//
// One instance renews its slice of one fleet-wide limit. It knows its own use and demand; Redis
// knows what the other live instances hold and want. The new slice:
//   demand(i)  = max(used_i, want_i)
//   held(j)    = max(slice_j, used_j) for counts (a lease or connection over a shrunk slice still
//                runs until it ends); slice_j for a rate
//   free       = max(0, limit - sum of all demands)
//   target     = demand + free / live           (an equal part of what nobody wants; for whole
//                                                 units rounded down, and the first free mod live
//                                                 instances by rank get one more, so the targets
//                                                 sum to the limit exactly: a unit another
//                                                 instance wants is never kept as a spare)
//   if the demands exceed the limit: target = limit x demand / total demand, for whole units
//   rounded down while this instance uses some and up while it uses none (unless another
//   instance has waited with none for longer: then down, it is the other's turn), so a small
//   limit wanted by more instances than it has units rotates between them in turn
//   slice      = min(target, limit - held by the others)      (never below 0)
// held() of live instances never sums past the limit, so neither do their uses: each instance
// only takes what the others leave, and a slice below its use admits nothing new until the use
// drops under it. Units an instance frees go to the others at their next renewals.
#pragma once

#include <cstdint>

namespace helios::fleet {

struct SliceInput {
  double limit = 0;                  // the fleet-wide limit (> 0)
  double used = 0;                   // this instance's use now (connections, active leases, qps)
  double want = 0;                   // this instance's demand (use plus waiters, or recent rate)
  double others_held = 0;            // sum of held() of the other live instances (see above)
  double others_demand = 0;          // sum of max(used, want) of the other live instances
  uint32_t live = 1;                 // live instances taking part, this one included
  uint32_t rank = 0;                 // this one's place among them (0-based, by instance id)
  bool other_waited_longer = false;  // another live instance has wanted, using none, for longer
  bool whole_units = true;           // connections and leases: integers; qps: a real rate
};

double grant_slice(const SliceInput& in);

// The share each instance uses while Redis cannot be reached: limit / instances last seen
// alive (rounded down for whole units, so the shares still sum within the limit).
double static_share(double limit, uint32_t live, bool whole_units);

}  // namespace helios::fleet
