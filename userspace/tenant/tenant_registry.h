// All tenants seen by this process: name -> TenantState, created on first sight.
//
// Lookups and creation take a mutex (connect time, not the hot path); the states themselves are
// lock-free and their addresses never change, so workers keep TenantState* for the life of a
// client. States live in fixed-size slabs (no per-tenant allocation, no moves) indexed by a
// dense index, and an open-addressing table of 4-byte slots maps names to indices: the whole
// per-tenant cost is sizeof(TenantState) plus a few bytes (checked in a unit test).
//
// Bounded: after max_tenants distinct names, new names share one overflow state named
// "(other)" (default limits, not findable by name) and overflowed() counts those lookups.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "tenant/glob.h"
#include "tenant/tenant_limits.h"
#include "tenant/tenant_state.h"

namespace helios::tenant {

class TenantRegistry {
 public:
  static constexpr uint32_t kDefaultMaxTenants = 100000;
  static constexpr std::string_view kOtherName = "(other)";

  explicit TenantRegistry(uint32_t max_tenants = kDefaultMaxTenants,
                          TenantLimits default_limits = {});
  ~TenantRegistry();
  TenantRegistry(const TenantRegistry&) = delete;
  TenantRegistry& operator=(const TenantRegistry&) = delete;

  // The tenant's state (created with the limits of its most specific rule, or the default),
  // or the overflow state past max_tenants. Never null. The name is clipped to 63 bytes.
  TenantState* get_or_create(std::string_view name, Nanos now);
  // The tenant's state if it was seen, else nullptr.
  TenantState* find(std::string_view name) const;
  // By dense index, lock-free; nullptr when index >= size().
  TenantState* at(uint32_t index) const;
  // States created so far (named tenants plus the overflow state once it exists).
  uint32_t size() const { return size_.load(std::memory_order_acquire); }
  uint32_t max_tenants() const { return max_tenants_; }
  // The overflow state, or nullptr if no name has overflowed yet.
  TenantState* other() const { return other_.load(std::memory_order_acquire); }
  // Lookups of new names that were mapped to the overflow state.
  uint64_t overflowed() const { return overflowed_.load(std::memory_order_relaxed); }

  // Reload: recompute every state's limits in place from `rules` (most specific pattern wins,
  // ties go to the earlier rule) and `default_limits`; new tenants get them too. Fails without
  // changing anything if a pattern is invalid.
  Status apply_limits(const std::vector<TenantRule>& rules, const TenantLimits& default_limits,
                      Nanos now);

  // Calls fn(TenantState&) for every state in index order. States created during the walk may
  // or may not be visited.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    uint32_t n = size();
    for (uint32_t i = 0; i < n; ++i) fn(*at(i));
  }

  // Bytes this registry holds on the heap (slabs, slab table, name index).
  size_t memory_bytes() const;

 private:
  static constexpr uint32_t kSlabStates = 256;
  static constexpr uint32_t kEmptySlot = UINT32_MAX;

  // Caller holds mu_.
  TenantState* create_locked(std::string_view clipped, bool overflow, Nanos now);
  const TenantLimits& limits_for_locked(std::string_view name, int16_t* rule) const;
  uint32_t find_slot_locked(std::string_view clipped, size_t hash) const;
  void grow_index_locked();

  const uint32_t max_tenants_;
  const uint32_t slab_count_;
  std::unique_ptr<std::atomic<TenantState*>[]> slabs_;  // slab_count_ entries, filled lazily
  std::atomic<uint32_t> size_{0};
  std::atomic<TenantState*> other_{nullptr};
  std::atomic<uint64_t> overflowed_{0};

  mutable std::mutex mu_;
  std::vector<uint32_t> index_;  // open addressing, power-of-two size, linear probing
  uint32_t named_ = 0;           // named tenants in index_
  std::vector<TenantLimits> rule_limits_;
  RuleMatcher matcher_;
  TenantLimits default_limits_;
};

}  // namespace helios::tenant
