// This instance's fleet shares of every tenant's max_connections and max_active ([fleet],
// docs/fleet.md), by tenant index: the local limits the admission checks enforce instead of the
// configured, fleet-wide ones. Written by the fleet agent's thread, read lock-free by the
// workers. Allocated only with [fleet] (8 bytes per tenant slot), so the per-tenant state keeps
// its size without it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "tenant/tenant_state.h"

namespace helios::tenant {

class FleetCaps {
 public:
  // slots: max_tenants + 1 (the overflow state's index).
  explicit FleetCaps(uint32_t slots)
      : slots_(slots),
        conn_(new std::atomic<uint32_t>[slots]),
        active_(new std::atomic<uint32_t>[slots]) {
    for (uint32_t i = 0; i < slots; ++i) {
      conn_[i].store(TenantState::kNoCap, std::memory_order_relaxed);
      active_[i].store(TenantState::kNoCap, std::memory_order_relaxed);
    }
  }
  // TenantState::kNoCap: no share (the configured limit applies).
  uint32_t connections(uint32_t index) const { return load(conn_, index); }
  uint32_t active(uint32_t index) const { return load(active_, index); }
  void set_connections(uint32_t index, uint32_t cap) { store(conn_, index, cap); }
  void set_active(uint32_t index, uint32_t cap) { store(active_, index, cap); }

 private:
  using Slots = std::unique_ptr<std::atomic<uint32_t>[]>;
  uint32_t load(const Slots& s, uint32_t index) const {
    return index < slots_ ? s[index].load(std::memory_order_relaxed) : TenantState::kNoCap;
  }
  void store(Slots& s, uint32_t index, uint32_t cap) {
    if (index < slots_) s[index].store(cap, std::memory_order_relaxed);
  }
  const uint32_t slots_;
  Slots conn_;
  Slots active_;
};

}  // namespace helios::tenant
