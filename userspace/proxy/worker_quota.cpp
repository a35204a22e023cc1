// Tenant quotas on the data path: QPS tokens for statements (with qps_max_wait), the
// max_active gate, max_transaction_duration, and following a tenant change in session mode.
// Every check is O(1) on lock-free tenant state; waits are driven by the worker's tick.
#include "common/log.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "proxy/worker.h"

namespace helios::proxy {
namespace {
std::string millis(Nanos n) {
  return std::to_string(n / kNanosPerMilli) + " ms";
}
}  // namespace

bool Worker::admit_queries(Client* c, Nanos now) {
  if (!ctx_.quotas_enabled.load(std::memory_order_relaxed) || !c->tenant) {
    c->pending_queries = 0;
    return true;
  }
  while (c->pending_queries > 0 && c->tenant->try_take_qps(now)) --c->pending_queries;
  return c->pending_queries == 0;
}

// A client whose statements wait for QPS tokens: admit them, or give up after qps_max_wait.
void Worker::check_throttled(Client* c, Nanos now) {
  if (admit_queries(c, now)) {
    c->throttled = false;
    c->throttle_since = 0;
    if (c->state == ClientState::kThrottled) {
      set_state(c, ClientState::kIdle, now);
      need_backend(c);
    } else {
      flush_backend(c);
    }
    return;
  }
  // Inside a transaction the statement keeps waiting: failing it here would leave the client
  // and the server disagreeing about the transaction. Outside, qps_max_wait bounds the wait.
  if (c->state != ClientState::kThrottled) return;
  Nanos max_wait = c->tenant->qps_max_wait();
  if (now - c->throttle_since < max_wait) return;
  c->throttled = false;
  c->pending_queries = 0;
  c->throttle_since = 0;
  std::string why =
      "tenant \"" + std::string(c->tenant->name()) + "\" is over its query rate limit (" +
      std::to_string(c->tenant->limits().max_qps) + " queries/s, max_qps); the statement waited " +
      millis(max_wait) + " (qps_max_wait)";
  refuse_quota(c, tenant::Rejection::kQps, why);
  set_state(c, ClientState::kQueued, now);  // fail_pending answers from a waiting state
  fail_pending(c, pg::sqlstate::kConfigurationLimitExceeded, why);
}

void Worker::pass_gate(tenant::TenantState* t) {
  if (auto next = ctx_.gates.leave(t)) {
    tenant::GateWaiter w = *next;
    ctx_.workers[w.worker]->post([w, t](Worker& wk) { wk.on_gate_open(w.slot, w.gen, t); }, *this);
  }
}

void Worker::release_active(Client* c) {
  if (!c->active_held) return;
  c->active_held = false;
  pass_gate(c->tenant);
}

void Worker::on_gate_open(uint32_t slot, uint32_t gen, tenant::TenantState* t) {
  Client* c = client_at(slot, gen);
  if (!c || !c->gate_waiting || c->state != ClientState::kQueued) {
    // The waiter left before its turn came: the slot it was given goes to the next one.
    if (c) c->gate_waiting = false;
    pass_gate(t);
    return;
  }
  c->gate_waiting = false;
  c->active_held = true;
  need_backend(c);
}

void Worker::check_transaction_duration(Client* c, Nanos now) {
  if (!c->tenant || !c->txn_started || c->duration_cancelled) return;
  if (!ctx_.quotas_enabled.load(std::memory_order_relaxed)) return;
  Nanos limit = c->tenant->max_transaction_duration();
  if (limit <= 0 || now - c->txn_started < limit) return;
  // The replies must come through the worker (the 57014 gets our reason), and the counts below
  // must be current: a lease in the kernel comes back first.
  if (path_->holds(c) && (!path_->settle(c) || !c->txn_started)) return;
  c->duration_cancelled = true;
  c->tenant->record_rejection(tenant::Rejection::kTransactionDuration);
  pool::Backend* b = c->backend;
  std::string why = "transaction exceeded max_transaction_duration of " + millis(limit) +
                    " for tenant \"" + std::string(c->tenant->name()) + "\"";
  if (!b || c->outstanding == 0) {
    // Idle in transaction: nothing to cancel; end the session and roll the backend back.
    log::info("closing a client: {}", why);
    send_error(c, true, pg::sqlstate::kIdleInTransactionSessionTimeout, why);
    return;
  }
  // A statement is running: cancel it. The server's 57014 reaches the client with our reason
  // (see the relay); the transaction is then aborted and the client's ROLLBACK returns the
  // backend clean.
  cancel_backend_query(b);
}

void Worker::follow_tenant(Client* c, const std::string& name) {
  if (!c->tenant || name == c->tenant->name()) return;
  tenant::TenantState* next = ctx_.tenants.acquire(
      name.empty() ? cfg_->tenant_quotas.default_tenant : name, monotonic_now());
  if (next == c->tenant) {
    ctx_.tenants.release(next);
    return;
  }
  bool quotas = ctx_.quotas_enabled.load(std::memory_order_relaxed);
  if (quotas && !next->try_admit_connection(true, ctx_.connection_cap(next))) {
    std::string why = "too many connections for tenant \"" + std::string(next->name()) +
                      "\": its max_connections is " + std::to_string(next->max_connections());
    ctx_.tenants.release(next);
    ctx_.metrics.count_login_failure(LoginFailure::kTenantQuota);
    security_log(c, "refused by a quota (connections): " + why);
    send_error(c, true, pg::sqlstate::kTooManyConnections, why);
    return;
  }
  if (c->tenant_counted) c->tenant->release_connection();
  c->tenant_counted = quotas;
  bool active = c->active_held;
  release_active(c);
  ctx_.tenants.release(c->tenant);
  c->tenant = next;
  // The session keeps its backend: count it for the new tenant without waiting at the gate.
  if (active) c->active_held = next->try_begin_active(ctx_.active_cap(next));
}

}  // namespace helios::proxy
