// All tenants seen by this process: name -> TenantState, created on first sight.
//
// Lookups and creation take a mutex (connect time, not the hot path); the states themselves are
// lock-free and their addresses never change, so workers keep TenantState* for the life of a
// client. States live in fixed-size slabs (no per-tenant allocation, no moves) indexed by a
// dense index, and an open-addressing table of 4-byte slots maps names to indices: the whole
// per-tenant cost is sizeof(TenantState) plus a few bytes (checked in a unit test).
//
// Bounded: clients take a tenant with acquire() and give it back with release(). When
// max_tenants names are known, a new name takes the place of the least recently released
// tenant that nobody holds and that is not configured (named exactly by a rule, or the default
// tenant); its state is rebuilt in place for the new name (same index). Only when every known
// tenant is held or configured do new names share one overflow state named "(other)" (default
// limits, not findable by name); overflowed() counts those lookups. States looked up with
// get_or_create() and never acquired are not evicted.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
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
  // get_or_create() for a client: the state is held (never evicted) until release().
  TenantState* acquire(std::string_view name, Nanos now);
  void release(TenantState* state);
  // The tenant named by this name is configured: never evicted ([tenant_quotas] default_tenant;
  // rules whose pattern has no wildcard are protected by apply_limits).
  void protect(std::string_view name);
  // Tenants evicted to make room for new names.
  uint64_t evicted() const { return evicted_.load(std::memory_order_relaxed); }

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

  // Calls fn(TenantState&) for every state in index order, under the registry's lock (a state
  // may be rebuilt for another name by an eviction): fn must not call back into the registry.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    std::lock_guard lock(mu_);
    uint32_t n = size();
    for (uint32_t i = 0; i < n; ++i) fn(*at(i));
  }

  // Called (under the registry's lock) for every state made for a name, before anybody uses it:
  // the fleet agent gives it its initial shares there. Set once, before the workers start.
  void set_on_create(std::function<void(TenantState&)> fn) { on_create_ = std::move(fn); }

  // Bytes this registry holds on the heap (slabs, slab table, name index).
  size_t memory_bytes() const;

 private:
  static constexpr uint32_t kSlabStates = 256;
  static constexpr uint32_t kEmptySlot = UINT32_MAX;

  // Registry-side bookkeeping of one state (under mu_): its links in the eviction list, a
  // doubly linked list of evictable states, least recently released first. 8 bytes, kept in
  // slabs beside the states' slabs; prev == kProtectedMark marks a configured tenant (never
  // listed). Holders are counted in held_, only for states somebody holds.
  static constexpr uint32_t kProtectedMark = UINT32_MAX - 1;
  struct Entry {
    uint32_t prev = kEmptySlot;
    uint32_t next = kEmptySlot;
  };
  bool listed_locked(uint32_t index) {
    const Entry& e = entry(index);
    return lru_head_ == index || (e.prev != kEmptySlot && e.prev != kProtectedMark);
  }
  bool protected_locked(uint32_t index) { return entry(index).prev == kProtectedMark; }
  void set_protected_locked(uint32_t index);
  Entry& entry(uint32_t index) { return entry_slabs_[index / kSlabStates][index % kSlabStates]; }

  // Caller holds mu_.
  TenantState* lookup_or_create_locked(std::string_view clipped, Nanos now);
  TenantState* create_locked(std::string_view clipped, bool overflow, Nanos now);
  TenantState* evict_for_locked(std::string_view clipped, size_t hash, Nanos now);
  void erase_slot_locked(uint32_t pos);
  void unlist_locked(uint32_t index);
  void list_locked(uint32_t index);
  bool protected_name_locked(std::string_view clipped, int16_t rule) const;
  const TenantLimits& limits_for_locked(std::string_view name, int16_t* rule) const;
  uint32_t find_slot_locked(std::string_view clipped, size_t hash) const;
  void grow_index_locked();

  const uint32_t max_tenants_;
  const uint32_t slab_count_;
  std::unique_ptr<std::atomic<TenantState*>[]> slabs_;       // slab_count_ entries, filled lazily
  std::unique_ptr<std::unique_ptr<Entry[]>[]> entry_slabs_;  // slab_count_, filled with slabs_
  std::atomic<uint32_t> size_{0};
  std::atomic<TenantState*> other_{nullptr};
  std::atomic<uint64_t> overflowed_{0};
  std::atomic<uint64_t> evicted_{0};

  mutable std::mutex mu_;
  std::vector<uint32_t> index_;  // open addressing, power-of-two size, linear probing
  uint32_t named_ = 0;           // named tenants in index_
  std::vector<TenantLimits> rule_limits_;
  RuleMatcher matcher_;
  std::vector<bool> rule_literal_;  // per rule: its pattern names one tenant exactly
  std::vector<std::string> protected_names_;
  TenantLimits default_limits_;
  std::unordered_map<uint32_t, uint32_t> held_;  // state index -> holders (> 0)
  uint32_t lru_head_ = kEmptySlot;               // evicted first
  uint32_t lru_tail_ = kEmptySlot;
  std::function<void(TenantState&)> on_create_;
};

}  // namespace helios::tenant
