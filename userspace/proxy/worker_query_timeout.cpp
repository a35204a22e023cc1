// query_timeout ([connection_pool], or a tenant rule's): a statement the server has not
// answered within the timeout is cancelled with a CancelRequest to its backend, as a client's
// own cancel would be. PostgreSQL answers 57014 ("canceling statement due to user request") to
// the client; inside a transaction block the transaction is then aborted, as on a direct
// connection, and the lease goes on. Checked from the worker's tick (every 20 ms).
//
// "Running" is timed by the proxy: from when the request went to the backend (the oldest
// unanswered Query or Sync) until its ReadyForQuery. On the kernel data path the replies may
// have gone through the kernel, so a lease there is taken back (LeasePath::settle) before it is
// judged (once, when its timer passes the timeout): only then are the worker's counts current.
#include <string>

#include "common/clock.h"
#include "proxy/worker.h"
#include "tenant/tenant_state.h"

namespace helios::proxy {

namespace {

// The client's tenant rule's value (rules inherit [connection_pool]'s when they set none), or
// [connection_pool]'s. Read from the worker's config by the tenant's rule index, so the
// per-tenant state stays within its 256 bytes; right after a reload that reorders rules the
// index may name a rule of the new config for one tick.
Nanos query_timeout_for(const config::Config& cfg, const tenant::TenantState* t, bool quotas) {
  if (!t || !quotas) return cfg.connection_pool.query_timeout;
  int16_t rule = t->rule();
  const auto& rules = cfg.tenant_quotas.limits;
  if (rule >= 0 && size_t(rule) < rules.size()) return rules[size_t(rule)].limits.query_timeout;
  return cfg.tenant_quotas.default_limits.query_timeout;
}

}  // namespace

void Worker::check_query_timeout(Client* c, Nanos now) {
  Nanos limit =
      query_timeout_for(*cfg_, c->tenant, ctx_.quotas_enabled.load(std::memory_order_relaxed));
  if (limit <= 0 || c->query_cancelled || !c->query_started || !c->backend) return;
  if (now - c->query_started < limit) return;
  if (path_->holds(c)) {
    if (!path_->settle(c)) return;
    if (c->state != ClientState::kActive || !c->backend || !c->query_started ||
        now - c->query_started < limit)
      return;
  }
  if (c->outstanding == 0) return;  // nothing of the client's is waiting for an answer
  c->query_cancelled = true;
  ctx_.metrics.count_query_timeout();
  security_log(c, "statement cancelled: it ran longer than query_timeout (" +
                      std::to_string(limit / kNanosPerMilli) + " ms)");
  cancel_backend_query(c->backend);
}

}  // namespace helios::proxy
