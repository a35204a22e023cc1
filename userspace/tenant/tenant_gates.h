// Per-tenant admission to backend leases (max_active, Heimdall's "user pool"): a client whose
// tenant already holds max_active leases waits here, FIFO, before it may wait for a backend in
// its pool's fair queue. A lease ending passes its slot to the next waiter of the same tenant.
// Gates exist only for tenants that have waited; an uncontended enter/leave is one CAS.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "tenant/fleet_caps.h"
#include "tenant/tenant_state.h"

namespace helios::tenant {

struct GateWaiter {
  uint16_t worker = 0;
  uint32_t slot = 0;
  uint32_t gen = 0;
  bool operator==(const GateWaiter&) const = default;
};

class TenantGates {
 public:
  explicit TenantGates(uint32_t max_tenants)
      : max_(max_tenants + 1), gates_(new std::atomic<Gate*>[max_]) {
    for (uint32_t i = 0; i < max_; ++i) gates_[i].store(nullptr, std::memory_order_relaxed);
  }
  ~TenantGates() {
    for (uint32_t i = 0; i < max_; ++i) delete gates_[i].load();
  }

  // [fleet]: the shares of max_active to enforce instead of the configured values. Set once,
  // before the workers start.
  void set_fleet_caps(const FleetCaps* caps) { caps_ = caps; }

  // True: the client now counts as one of the tenant's active leases. False: it was queued and
  // will be told (a GateWaiter returned by leave()) when a slot is free.
  bool enter(TenantState* t, const GateWaiter& w);
  // A lease of tenant t ended (or was given up): the next waiter to wake, if any (it already
  // counts as active).
  std::optional<GateWaiter> leave(TenantState* t);
  // The tenant's local share of max_active grew (fleet/): the next waiter to wake, if a slot is
  // free now. Call until it returns nothing.
  std::optional<GateWaiter> admit_waiting(TenantState* t);
  // Removes a waiter (timeout, cancel, close). False if it was already let through.
  bool cancel(TenantState* t, const GateWaiter& w);

 private:
  struct Gate {
    std::mutex mu;
    std::deque<GateWaiter> waiters;
  };
  Gate* gate(uint32_t index);

  uint32_t cap(const TenantState* t) const {
    return caps_ ? caps_->active(t->index()) : TenantState::kNoCap;
  }

  uint32_t max_;
  std::unique_ptr<std::atomic<Gate*>[]> gates_;
  const FleetCaps* caps_ = nullptr;
};

}  // namespace helios::tenant
