// Logins waiting for a fleet share of their tenant's max_connections (docs/fleet.md): the local
// slice was full, but other instances may give units back. The fleet agent's thread drains them
// after each renewal: admitted when the new slice has room, refused past admission_wait.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "common/clock.h"
#include "tenant/fleet_caps.h"
#include "tenant/tenant_state.h"

namespace helios::proxy {

class FleetAdmission {
 public:
  struct Waiter {
    uint16_t worker = 0;
    uint32_t slot = 0;
    uint32_t gen = 0;
    tenant::TenantState* tenant = nullptr;
    Nanos deadline = 0;
  };
  void add(const Waiter& w);
  // Admits the waiters the tenants' slices now allow (each is counted in its tenant's
  // connections) and gives up on those past their deadline; done(w, admitted) for each.
  void drain(const tenant::FleetCaps& caps, Nanos now,
             const std::function<void(const Waiter&, bool admitted)>& done);

 private:
  std::mutex mu_;
  std::vector<Waiter> waiters_;  // in arrival order
};

}  // namespace helios::proxy
