// The slice arithmetic of fleet leases (docs/fleet.md), as a pure function. The Lua script in
// lease_script.cpp runs the same steps atomically inside Redis; unit tests pin this one.
//
// One instance renews its slice of one fleet-wide limit. It knows its own use and demand; Redis
// knows the slices the other live instances hold and their demand. The new slice:
//   demand(i)  = max(used_i, want_i)
//   free       = max(0, limit - sum of all demands)
//   target     = demand + free / live           (an equal part of what nobody wants; rounded up
//                                                 for whole units, so small leftovers are taken)
//   if the demands exceed the limit: target = max(used, limit * demand / total demand), whole
//                                     units rounded up (the cap below keeps the sum)
//   slice      = min(target, limit - slices of the others)      (never below 0)
// The slices of live instances never sum past the limit: each instance only ever takes from what
// the others leave. An instance over its fair part gives the excess back at its next renewal,
// never below what it uses (unless the others already hold more than limit - used, which only
// happens after Redis was down); the units it frees go to the others at their renewals.
#pragma once

#include <cstdint>

namespace helios::fleet {

struct SliceInput {
  double limit = 0;          // the fleet-wide limit (> 0)
  double used = 0;           // this instance's use now (connections, active leases, qps)
  double want = 0;           // this instance's demand (use plus waiters, or recent rate)
  double others_slices = 0;  // sum of the slices the other live instances hold
  double others_demand = 0;  // sum of max(used, want) of the other live instances
  uint32_t live = 1;         // live instances taking part, this one included
  bool whole_units = true;   // connections and leases: integers; qps: a real rate
};

double grant_slice(const SliceInput& in);

// The share each instance uses while Redis cannot be reached: limit / instances last seen
// alive (rounded down for whole units, so the shares still sum within the limit).
double static_share(double limit, uint32_t live, bool whole_units);

}  // namespace helios::fleet
