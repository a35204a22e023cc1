#include "tenant/tenant_gates.h"

#include <algorithm>

namespace helios::tenant {

TenantGates::Gate* TenantGates::gate(uint32_t index) {
  if (index >= max_) index = max_ - 1;
  Gate* g = gates_[index].load(std::memory_order_acquire);
  if (g) return g;
  auto* made = new Gate;
  if (gates_[index].compare_exchange_strong(g, made, std::memory_order_acq_rel)) return made;
  delete made;
  return g;
}

bool TenantGates::enter(TenantState* t, const GateWaiter& w) {
  if (t->max_active() == 0) return t->try_begin_active(cap(t));  // unlimited: just counted
  Gate* g = gate(t->index());
  std::lock_guard lock(g->mu);
  // FIFO: nobody overtakes a waiter, even when a slot frees up between two checks.
  if (g->waiters.empty() && t->try_begin_active(cap(t))) return true;
  g->waiters.push_back(w);
  t->enter_queue();
  return false;
}

std::optional<GateWaiter> TenantGates::leave(TenantState* t) {
  t->end_active();
  if (t->max_active() == 0 &&
      !gates_[std::min(t->index(), max_ - 1)].load(std::memory_order_acquire))
    return std::nullopt;
  Gate* g = gate(t->index());
  std::lock_guard lock(g->mu);
  if (g->waiters.empty() || !t->try_begin_active(cap(t))) return std::nullopt;
  GateWaiter next = g->waiters.front();
  g->waiters.pop_front();
  t->leave_queue();
  return next;
}

std::optional<GateWaiter> TenantGates::admit_waiting(TenantState* t) {
  if (!gates_[std::min(t->index(), max_ - 1)].load(std::memory_order_acquire)) return std::nullopt;
  Gate* g = gate(t->index());
  std::lock_guard lock(g->mu);
  if (g->waiters.empty() || !t->try_begin_active(cap(t))) return std::nullopt;
  GateWaiter next = g->waiters.front();
  g->waiters.pop_front();
  t->leave_queue();
  return next;
}

bool TenantGates::cancel(TenantState* t, const GateWaiter& w) {
  Gate* g = gate(t->index());
  std::lock_guard lock(g->mu);
  auto it = std::find(g->waiters.begin(), g->waiters.end(), w);
  if (it == g->waiters.end()) return false;
  g->waiters.erase(it);
  t->leave_queue();
  return true;
}

}  // namespace helios::tenant
