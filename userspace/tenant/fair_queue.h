// Weighted deficit round robin across tenants, FIFO within a tenant, for clients waiting for a
// backend. Intrusive: a waiter embeds a FairQueue::Node, so push/pop/remove never allocate.
//
// Scheduling (DRR with unit cost: every waiter costs 1):
//   - Tenants with waiters form a ring; the cursor is the tenant being served.
//   - When a tenant's turn starts its deficit becomes its weight; each pop from it spends 1.
//     The turn ends when the deficit reaches 0 (the cursor moves on) or the tenant runs out of
//     waiters (it leaves the ring and its deficit is reset: no credit is banked while idle).
//   - A tenant that gets its first waiter joins the ring just before the cursor, i.e. at the end
//     of the current round. So a waiter of tenant B waits at most one round (the sum of the
//     other backlogged tenants' weights) however many waiters tenant A has.
//   - While tenants stay backlogged, tenant t gets exactly weight(t) / sum(weights) of the pops.
// Tenants are dense indices (TenantState::index). Per-tenant slots are allocated the first time
// an index is seen (push or set_weight) or up front with reserve(); never per push otherwise.
// Not thread-safe: the pool's lock protects it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace helios::tenant {

class FairQueue {
 public:
  struct Node {
    Node* prev = nullptr;
    Node* next = nullptr;
    uint32_t tenant = 0;  // set by the owner before push()
    bool queued = false;  // maintained by the queue
  };

  FairQueue() = default;
  explicit FairQueue(uint32_t reserve_tenants) { reserve(reserve_tenants); }
  FairQueue(const FairQueue&) = delete;
  FairQueue& operator=(const FairQueue&) = delete;

  // Pre-allocates slots for tenant indices [0, tenants).
  void reserve(uint32_t tenants);
  // Weight 0 is treated as 1. Takes effect from the tenant's next turn (a turn in progress is
  // only shortened, never lengthened).
  void set_weight(uint32_t tenant, uint32_t weight);
  uint32_t weight(uint32_t tenant) const;

  // Appends `n` to its tenant's FIFO. `n` must not already be queued.
  void push(Node* n);
  // Unlinks a queued node (timeout, cancel). O(1). False if `n` is not queued.
  bool remove(Node* n);
  // Next waiter by weighted round robin, or nullptr when empty.
  Node* pop();

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t size_for(uint32_t tenant) const;
  // Tenants currently in the round (with at least one waiter).
  uint32_t active_tenants() const { return active_; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  struct Slot {
    Node* head = nullptr;
    Node* tail = nullptr;
    uint32_t count = 0;
    uint32_t weight = 1;
    uint32_t deficit = 0;  // > 0 only for the cursor tenant during its turn
    uint32_t ring_prev = kNone;
    uint32_t ring_next = kNone;
  };

  Slot& slot(uint32_t tenant);
  void join_round(uint32_t tenant);
  void leave_round(uint32_t tenant);

  std::vector<Slot> slots_;
  uint32_t cursor_ = kNone;
  uint32_t active_ = 0;
  size_t size_ = 0;
};

}  // namespace helios::tenant
