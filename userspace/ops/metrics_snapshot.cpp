#include "ops/metrics_snapshot.h"

#include "proxy/proxy.h"

namespace helios::ops {

ProxySnapshot take_snapshot(proxy::Proxy& server, const proxy::MetricsCounters& counters,
                            Nanos started) {
  ProxySnapshot s;
  s.taken_at = monotonic_now();
  s.uptime = s.taken_at - started;
  s.ready = server.ready();
  s.draining = server.draining();
  auto cfg = server.config();
  s.mode = cfg->proxy.mode;
  s.data_path = cfg->proxy.data_path;
  s.max_client_connections = cfg->connection_pool.max_client_connections;
  s.backend_max_connections = cfg->backend.max_connections;
  s.max_tenant_labels = cfg->metrics.max_tenant_labels;
  s.quotas_enabled = cfg->tenant_quotas.enabled;
  s.config_source = cfg->source;

  proxy::SharedContext& ctx = server.context();
  s.client_connections = ctx.client_connections.load(std::memory_order_relaxed);
  s.cancel_requests = ctx.cancel_requests.load(std::memory_order_relaxed);
  for (size_t r = 0; r < ctx.pins_total.size(); ++r)
    s.pins.emplace_back(session::pin_reason_name(session::PinReason(r)),
                        ctx.pins_total[r].load(std::memory_order_relaxed));
  s.pinned_clients = ctx.pinned_clients.load(std::memory_order_relaxed);
  s.prepared_statements = ctx.prepared.size();
  s.prepared_statement_bytes = ctx.prepared.bytes();
  s.session_probes = ctx.session_probes.load(std::memory_order_relaxed);
  s.session_probes_failed = ctx.session_probes_failed.load(std::memory_order_relaxed);
  static constexpr const char* kFeatureNames[] = {"edge_guard", "vip_steering", "same_host_bypass",
                                                  "lease_splicing"};
  for (size_t f = 0; f < ctx.kernel_features.size(); ++f)
    s.kernel_features.emplace_back(kFeatureNames[f], ctx.kernel_features[f].load());
  if (ctx.edge_guard)
    if (auto counters = ctx.edge_guard->counters()) s.edge = std::move(*counters);
  uint32_t awake = ctx.active_workers.load(std::memory_order_relaxed);
  for (const auto& w : server.workers()) {
    const auto& st = w->stats();
    s.workers.push_back({st.clients.load(std::memory_order_relaxed),
                         st.bytes_from_clients.load(std::memory_order_relaxed),
                         st.bytes_from_backends.load(std::memory_order_relaxed),
                         st.recv_buffers_free.load(std::memory_order_relaxed),
                         st.send_copied_bytes.load(std::memory_order_relaxed),
                         st.moved_in.load(std::memory_order_relaxed),
                         st.moved_out.load(std::memory_order_relaxed), w->id() < awake});
  }

  if (ctx.hosts) s.hosts = ctx.hosts->snapshot(s.taken_at);
  if (ctx.pools) {
    for (pool::Pool* p : ctx.pools->all()) {
      PoolSample ps;
      ps.snap = p->snapshot();
      ps.database = p->key().database;
      ps.user = p->key().user;
      ps.group = p->key().group;
      pool::PoolCounters& c = p->counters();
      ps.connects = c.connects.load(std::memory_order_relaxed);
      ps.connect_failures = c.connect_failures.load(std::memory_order_relaxed);
      ps.closed_lifetime = c.closed_lifetime.load(std::memory_order_relaxed);
      ps.closed_idle = c.closed_idle.load(std::memory_order_relaxed);
      ps.closed_over_max = c.closed_over_max.load(std::memory_order_relaxed);
      ps.closed_broken = c.closed_broken.load(std::memory_order_relaxed);
      ps.dead_idle_detected = c.dead_idle_detected.load(std::memory_order_relaxed);
      ps.refused_transitions = c.refused_transitions.load(std::memory_order_relaxed);
      ps.lease_ns_total = c.lease_ns_total.load(std::memory_order_relaxed);
      ps.acquire_latency = c.acquire_latency.snapshot();
      ps.lease_duration = c.lease_duration.snapshot();
      s.pools.push_back(std::move(ps));
    }
  }

  tenant::TenantState* other = ctx.tenants.other();
  ctx.tenants.for_each([&](const tenant::TenantState& t) {
    TenantSample ts;
    ts.stats = t.stats(s.taken_at);
    ts.name = std::string(t.name());
    ts.stats.name = {};
    int8_t m = t.pool_mode_override();
    ts.pool_mode = m < 0 ? s.mode : config::PoolMode(m);
    ts.overflow = &t == other;
    s.tenants.push_back(std::move(ts));
  });
  s.max_tenants = ctx.tenants.max_tenants();
  s.tenants_overflowed = ctx.tenants.overflowed();
  s.tenants_evicted = ctx.tenants.evicted();

  s.counters = counters.snapshot();
  if (const fleet::FleetAgent* f = server.context().fleet) s.fleet = f->view();
  proxy::ReloadOutcome r = server.last_reload();
  // ReloadOutcome has no "never reloaded" flag: a default one has ok=false, no error, took=0.
  s.last_reload.attempted = r.ok || !r.error.empty() || r.took != 0;
  s.last_reload.ok = r.ok;
  s.last_reload.error = r.error;
  s.last_reload.took = r.took;
  return s;
}

}  // namespace helios::ops
