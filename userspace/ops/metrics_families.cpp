#include "ops/metrics_families.h"

#include "ops/label_value.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <limits>
#include <map>
#include <utility>

namespace helios::ops {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void add_gauge(MetricFamily& f, MetricLabels labels, double v) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = v;
  f.metric.push_back(std::move(m));
}

void add_counter(MetricFamily& f, MetricLabels labels, double v) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = v;
  f.metric.push_back(std::move(m));
}

namespace {

using Labels = MetricLabels;

// One series per [backend] host (only when several are configured).
void add_host_families(const ProxySnapshot& s, std::vector<MetricFamily>& out) {
  if (s.hosts.empty()) return;
  auto role = family("helios_host_role",
                     "1 for the role the health checker found for the host (primary, replica, "
                     "unknown, conflict)",
                     MetricType::Gauge);
  auto banned = family("helios_host_banned", "1 while the host is banned (failed its check)",
                       MetricType::Gauge);
  auto lagging = family("helios_host_lagging", "1 while a replica gets no reads (lag or paused)",
                        MetricType::Gauge);
  auto lag_s = family("helios_host_replay_lag_seconds",
                      "Replica replay delay (age of the last replayed commit while WAL waits)",
                      MetricType::Gauge);
  auto lag_b = family("helios_host_replay_lag_bytes", "Replica WAL bytes behind the primary",
                      MetricType::Gauge);
  auto routed =
      family("helios_host_routed_total", "Leases routed to the host", MetricType::Counter);
  for (const auto& h : s.hosts) {
    Labels l{{"host", sanitize_label_value(h.address)}};
    Labels lr = l;
    lr.push_back({"role", pool::to_string(h.role)});
    add_gauge(role, lr, 1);
    add_gauge(banned, l, h.banned ? 1 : 0);
    add_gauge(lagging, l, h.lagging ? 1 : 0);
    add_gauge(lag_s, l, h.lag_seconds);
    add_gauge(lag_b, l, double(h.lag_bytes));
    add_counter(routed, l, double(h.routed));
  }
  for (auto* f : {&role, &banned, &lagging, &lag_s, &lag_b, &routed}) out.push_back(std::move(*f));
}

void add_histogram(MetricFamily& f, Labels labels, const AtomicHistogram::Snapshot& h) {
  ClientMetric m;
  m.label = std::move(labels);
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = h.sum_seconds;
  uint64_t cum = 0;
  for (size_t i = 0; i < h.buckets.size(); ++i) {
    cum += h.buckets[i];
    ClientMetric::Bucket b;
    b.cumulative_count = cum;
    b.upper_bound = i < h.bounds.size() ? h.bounds[i] : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(b);
  }
  if (h.buckets.empty()) {  // a histogram always has its +Inf bucket
    ClientMetric::Bucket b;
    b.upper_bound = std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(b);
  }
  f.metric.push_back(std::move(m));
}

// Tenants summed under one (tenant_id, pool_mode) series.
struct TenantGroup {
  double connections = 0, max_connections = 0, active = 0, queued = 0, qps = 0;
  double max_qps = 0, max_active = 0;
  bool all_qps_limited = true, all_active_limited = true;
  uint64_t queries = 0, transactions = 0;
  std::array<uint64_t, size_t(tenant::Rejection::kCount)> rejections{};
  double query_ms_weighted = 0;  // avg_query_ms * queries, to re-average
  uint32_t tenants = 0;
};

void pool_families(const ProxySnapshot& s, std::vector<MetricFamily>& out) {
  auto active =
      family("helios_proxy_backend_connections_active",
             "Backend connections leased to a client or being cleaned up", MetricType::Gauge);
  auto idle = family("helios_proxy_backend_connections_idle",
                     "Backend connections idle in the pool", MetricType::Gauge);
  auto total =
      family("helios_proxy_backend_connections", "Open backend connections", MetricType::Gauge);
  auto connecting = family("helios_proxy_backend_connections_connecting",
                           "Backend connections being opened", MetricType::Gauge);
  auto max = family("helios_proxy_backend_connections_max",
                    "Configured maximum backend connections of the pool", MetricType::Gauge);
  auto min = family("helios_proxy_backend_connections_min",
                    "Configured warm minimum of backend connections", MetricType::Gauge);
  auto waiting = family("helios_proxy_waiting_clients",
                        "Clients waiting in the pool's queue for a backend", MetricType::Gauge);
  auto acquires =
      family("helios_proxy_acquires_total", "Backends handed to clients", MetricType::Counter);
  auto releases =
      family("helios_proxy_releases_total", "Backends returned by clients", MetricType::Counter);
  auto connects = family("helios_proxy_backend_connects_total", "Backend connections opened",
                         MetricType::Counter);
  auto failures = family("helios_proxy_backend_connect_failures_total",
                         "Backend connection attempts that failed", MetricType::Counter);
  auto closed = family("helios_proxy_backend_closed_total",
                       "Backend connections closed by the pool, by reason", MetricType::Counter);
  auto acquire = family("helios_proxy_acquire_latency_seconds",
                        "Time a client waited for a backend", MetricType::Histogram);
  auto lease = family("helios_proxy_lease_duration_seconds",
                      "Time a backend stayed leased to a client", MetricType::Histogram);
  for (const PoolSample& p : s.pools) {
    Labels l{{"pool", sanitize_label_value(p.snap.name)},
             {"pool_mode", std::string(config::to_string(p.snap.mode))}};
    add_gauge(active, l, double(p.snap.active));
    add_gauge(idle, l, double(p.snap.idle));
    add_gauge(total, l, double(p.snap.total));
    add_gauge(connecting, l, double(p.snap.connecting));
    add_gauge(max, l, double(p.snap.max));
    add_gauge(min, l, double(p.snap.min));
    add_gauge(waiting, l, double(p.snap.waiting));
    add_counter(acquires, l, double(p.snap.acquires));
    add_counter(releases, l, double(p.snap.releases));
    add_counter(connects, l, double(p.connects));
    add_counter(failures, l, double(p.connect_failures));
    std::pair<const char*, uint64_t> reasons[] = {{"lifetime", p.closed_lifetime},
                                                  {"idle_timeout", p.closed_idle},
                                                  {"over_max", p.closed_over_max},
                                                  {"broken", p.closed_broken},
                                                  {"dead_idle", p.dead_idle_detected}};
    for (auto& [why, n] : reasons) {
      Labels lr = l;
      lr.push_back({"reason", why});
      add_counter(closed, lr, double(n));
    }
    add_histogram(acquire, l, p.acquire_latency);
    add_histogram(lease, l, p.lease_duration);
  }
  for (auto* f : {&active, &idle, &total, &connecting, &max, &min, &waiting, &acquires, &releases,
                  &connects, &failures, &closed, &acquire, &lease})
    out.push_back(std::move(*f));
}

void tenant_families(const ProxySnapshot& s, std::vector<MetricFamily>& out) {
  std::vector<std::string> labels = tenant_labels(s);
  std::map<std::pair<std::string, config::PoolMode>, TenantGroup> groups;
  std::vector<std::pair<std::string, config::PoolMode>> order;  // first appearance, "other" last
  for (size_t i = 0; i < s.tenants.size(); ++i) {
    const TenantSample& t = s.tenants[i];
    auto key = std::make_pair(labels[i], t.pool_mode);
    auto [it, fresh] = groups.try_emplace(key);
    if (fresh) order.push_back(key);
    TenantGroup& g = it->second;
    const tenant::TenantStats& st = t.stats;
    ++g.tenants;
    g.connections += st.client_connections;
    g.max_connections += double(effective_max_connections(t, s));
    g.active += st.active_leases;
    g.queued += st.queued;
    g.qps += st.current_qps;
    if (qps_limited(t, s))
      g.max_qps += st.limits.max_qps;
    else
      g.all_qps_limited = false;
    if (s.quotas_enabled && st.limits.max_active > 0)
      g.max_active += st.limits.max_active;
    else
      g.all_active_limited = false;
    g.queries += st.queries_total;
    g.transactions += st.transactions_total;
    g.query_ms_weighted += st.avg_query_ms * double(st.queries_total);
    for (size_t r = 0; r < g.rejections.size(); ++r) g.rejections[r] += st.rejections[r];
  }
  std::stable_partition(order.begin(), order.end(),
                        [](const auto& k) { return k.first != kOtherTenantLabel; });

  auto conns = family("helios_proxy_tenant_connections", "Client connections of the tenant",
                      MetricType::Gauge);
  auto max_conns = family("helios_proxy_tenant_max_connections",
                          "Client connections the tenant may open (its quota, or the global "
                          "max_client_connections when it has none)",
                          MetricType::Gauge);
  auto active = family("helios_proxy_tenant_active_transactions",
                       "Backend leases the tenant holds now", MetricType::Gauge);
  auto max_active = family("helios_proxy_tenant_max_active",
                           "Concurrent backend leases the tenant may hold (only when limited)",
                           MetricType::Gauge);
  auto queued = family("helios_proxy_tenant_waiting_clients",
                       "Clients of the tenant waiting for a backend", MetricType::Gauge);
  auto queries =
      family("helios_proxy_tenant_queries_total", "Queries run by the tenant", MetricType::Counter);
  auto txns = family("helios_proxy_tenant_transactions_total",
                     "Transactions (backend leases) of the tenant", MetricType::Counter);
  auto qps = family("helios_proxy_tenant_qps", "Queries per second over the last second",
                    MetricType::Gauge);
  auto max_qps = family("helios_proxy_tenant_max_qps",
                        "The tenant's QPS quota (absent when it has none)", MetricType::Gauge);
  auto avg_query = family("helios_proxy_tenant_avg_query_seconds",
                          "Mean query time of the tenant since start", MetricType::Gauge);
  auto rejections =
      family("helios_proxy_quota_rejections_total",
             "Requests refused or cancelled by a tenant quota, by reason", MetricType::Counter);
  auto members = family("helios_proxy_tenant_label_members",
                        "Tenants reported under this tenant_id label (more than 1 for \"other\")",
                        MetricType::Gauge);
  for (const auto& key : order) {
    const TenantGroup& g = groups[key];
    Labels l{{"tenant_id", key.first}, {"pool_mode", std::string(config::to_string(key.second))}};
    add_gauge(conns, l, g.connections);
    add_gauge(max_conns, l, g.max_connections);
    add_gauge(active, l, g.active);
    if (g.all_active_limited) add_gauge(max_active, l, g.max_active);
    add_gauge(queued, l, g.queued);
    add_counter(queries, l, double(g.queries));
    add_counter(txns, l, double(g.transactions));
    add_gauge(qps, l, g.qps);
    if (g.all_qps_limited) add_gauge(max_qps, l, g.max_qps);
    add_gauge(avg_query, l, g.queries ? g.query_ms_weighted / double(g.queries) / 1000.0 : 0);
    for (size_t r = 0; r < g.rejections.size(); ++r) {
      Labels lr = l;
      lr.push_back({"reason", tenant::rejection_name(tenant::Rejection(r))});
      add_counter(rejections, lr, double(g.rejections[r]));
    }
    add_gauge(members, l, g.tenants);
  }
  for (auto* f : {&conns, &max_conns, &active, &max_active, &queued, &queries, &txns, &qps,
                  &max_qps, &avg_query, &rejections, &members})
    out.push_back(std::move(*f));
}

void process_families(const ProxySnapshot& s, std::vector<MetricFamily>& out) {
  auto info = family("helios_proxy_info", "Build and running configuration (value is 1)",
                     MetricType::Gauge);
  add_gauge(info,
            {{"version", HELIOS_VERSION},
             {"pool_mode", std::string(config::to_string(s.mode))},
             {"data_path", std::string(config::to_string(s.data_path))}},
            1);
  out.push_back(std::move(info));

  auto ready = family("helios_proxy_ready", "1 when the proxy accepts and serves clients",
                      MetricType::Gauge);
  add_gauge(ready, {}, s.ready && !s.draining ? 1 : 0);
  out.push_back(std::move(ready));
  auto draining =
      family("helios_proxy_draining", "1 while the proxy drains before exiting", MetricType::Gauge);
  add_gauge(draining, {}, s.draining ? 1 : 0);
  out.push_back(std::move(draining));
  add_host_families(s, out);
  auto uptime =
      family("helios_proxy_uptime_seconds", "Seconds since the proxy started", MetricType::Gauge);
  add_gauge(uptime, {}, double(s.uptime) / 1e9);
  out.push_back(std::move(uptime));

  auto clients = family("helios_proxy_client_connections",
                        "Client connections to the proxy (all tenants)", MetricType::Gauge);
  add_gauge(clients, {}, double(s.client_connections));
  out.push_back(std::move(clients));
  auto max_clients = family("helios_proxy_client_connections_max",
                            "[connection_pool] max_client_connections", MetricType::Gauge);
  add_gauge(max_clients, {}, double(s.max_client_connections));
  out.push_back(std::move(max_clients));
  auto worker_clients = family("helios_proxy_worker_clients",
                               "Client sockets owned by each worker thread", MetricType::Gauge);
  for (size_t i = 0; i < s.workers.size(); ++i)
    add_gauge(worker_clients, {{"worker", std::to_string(i)}}, double(s.workers[i].clients));
  out.push_back(std::move(worker_clients));
  auto worker_buffers = family("helios_proxy_worker_recv_buffers_free",
                               "Receive buffers (16 KiB) each worker's io_uring can still fill; "
                               "all of them when the worker is idle",
                               MetricType::Gauge);
  for (size_t i = 0; i < s.workers.size(); ++i)
    if (s.workers[i].recv_buffers_free >= 0)
      add_gauge(worker_buffers, {{"worker", std::to_string(i)}},
                double(s.workers[i].recv_buffers_free));
  out.push_back(std::move(worker_buffers));
  auto copied = family("helios_proxy_worker_send_copied_bytes_total",
                       "Forwarded bytes copied out of the receive buffers because they had to "
                       "wait behind others (small ones, or all while buffers run low), so that "
                       "a client that reads slowly does not hold them",
                       MetricType::Counter);
  for (size_t i = 0; i < s.workers.size(); ++i)
    add_counter(copied, {{"worker", std::to_string(i)}}, double(s.workers[i].send_copied_bytes));
  out.push_back(std::move(copied));
  auto awake = family("helios_proxy_worker_awake",
                      "1 for each worker serving clients, 0 for one parked because the load does "
                      "not need it ([proxy] worker_scaling = \"load\")",
                      MetricType::Gauge);
  for (size_t i = 0; i < s.workers.size(); ++i)
    add_gauge(awake, {{"worker", std::to_string(i)}}, s.workers[i].awake ? 1.0 : 0.0);
  out.push_back(std::move(awake));
  auto moves = family("helios_proxy_worker_client_moves_total",
                      "Clients handed between workers between transactions, by worker and "
                      "direction (in: to this worker)",
                      MetricType::Counter);
  for (size_t i = 0; i < s.workers.size(); ++i) {
    add_counter(moves, {{"worker", std::to_string(i)}, {"direction", "in"}},
                double(s.workers[i].moved_in));
    add_counter(moves, {{"worker", std::to_string(i)}, {"direction", "out"}},
                double(s.workers[i].moved_out));
  }
  out.push_back(std::move(moves));
  auto cancels = family("helios_proxy_cancel_requests_total", "CancelRequest packets received",
                        MetricType::Counter);
  add_counter(cancels, {}, double(s.cancel_requests));
  out.push_back(std::move(cancels));

  // Bytes: the user-space path counts in the workers; the kernel path adds to MetricsCounters.
  auto bytes = family("helios_proxy_bytes_total", "Bytes relayed, by data path and direction",
                      MetricType::Counter);
  uint64_t from_clients = 0, from_backends = 0;
  for (const auto& w : s.workers) {
    from_clients += w.bytes_from_clients;
    from_backends += w.bytes_from_backends;
  }
  for (size_t p = 0; p < size_t(proxy::BytePath::kCount); ++p)
    for (size_t d = 0; d < size_t(proxy::ByteDirection::kCount); ++d) {
      double v = double(s.counters.bytes[p][d]);
      if (proxy::BytePath(p) == proxy::BytePath::kUserspace)
        v += double(proxy::ByteDirection(d) == proxy::ByteDirection::kClientToServer
                        ? from_clients
                        : from_backends);
      add_counter(bytes,
                  {{"data_path", proxy::byte_path_name(proxy::BytePath(p))},
                   {"direction", proxy::byte_direction_name(proxy::ByteDirection(d))}},
                  v);
    }
  out.push_back(std::move(bytes));

  auto pins =
      family("helios_proxy_pins_total",
             "Leases pinned past their pool mode's natural end, by reason", MetricType::Counter);
  for (const auto& [reason, n] : s.pins) add_counter(pins, {{"reason", reason}}, double(n));
  out.push_back(std::move(pins));
  auto pinned = family("helios_proxy_pinned_clients",
                       "Clients whose lease is pinned to its backend right now", MetricType::Gauge);
  add_gauge(pinned, {}, double(s.pinned_clients));
  out.push_back(std::move(pinned));
  auto stmts = family("helios_proxy_prepared_statements",
                      "Distinct prepared statements (tracked mode) held for connected clients",
                      MetricType::Gauge);
  add_gauge(stmts, {}, double(s.prepared_statements));
  out.push_back(std::move(stmts));
  auto stmt_bytes = family("helios_proxy_prepared_statement_bytes",
                           "Bytes of prepared statement text held for connected clients "
                           "(bounded by prepared_statement_memory_mb)",
                           MetricType::Gauge);
  add_gauge(stmt_bytes, {}, double(s.prepared_statement_bytes));
  out.push_back(std::move(stmt_bytes));
  auto probes = family("helios_proxy_session_probes_total",
                       "Session-state probes: leases whose statements may have changed session "
                       "state end by asking the server for it (transaction/statement pooling)",
                       MetricType::Counter);
  add_counter(probes, {}, double(s.session_probes));
  out.push_back(std::move(probes));
  auto failed = family("helios_proxy_session_probes_failed_total",
                       "Session-state probes whose answer could not be read (the client stays "
                       "pinned)",
                       MetricType::Counter);
  add_counter(failed, {}, double(s.session_probes_failed));
  out.push_back(std::move(failed));

  auto features = family("helios_proxy_kernel_feature",
                         "Kernel features: 1 active, 0 not configured, -1 unavailable here "
                         "(the proxy runs without it)",
                         MetricType::Gauge);
  for (const auto& [name, state] : s.kernel_features)
    add_gauge(features, {{"feature", name}}, double(state));
  out.push_back(std::move(features));
  if (!s.edge.empty()) {
    auto syn = family("helios_proxy_edge_syn_total",
                      "SYNs to the VIP seen by the XDP guard, by tenant prefix and verdict",
                      MetricType::Counter);
    auto pkts = family("helios_proxy_edge_packets_total",
                       "Packets to the VIP by tenant prefix (XDP guard)", MetricType::Counter);
    auto bytes_f = family("helios_proxy_edge_bytes_total",
                          "Bytes to the VIP by tenant prefix (XDP guard)", MetricType::Counter);
    for (const auto& e : s.edge) {
      std::string t = e.tenant.empty() ? "(unmatched)" : e.tenant;
      add_counter(syn, {{"tenant_id", t}, {"verdict", "passed"}}, double(e.syn_passed));
      add_counter(syn, {{"tenant_id", t}, {"verdict", "dropped"}}, double(e.syn_dropped));
      add_counter(syn, {{"tenant_id", t}, {"verdict", "dropped_global"}},
                  double(e.syn_dropped_global));
      add_counter(pkts, {{"tenant_id", t}}, double(e.packets));
      add_counter(bytes_f, {{"tenant_id", t}}, double(e.bytes));
    }
    out.push_back(std::move(syn));
    out.push_back(std::move(pkts));
    out.push_back(std::move(bytes_f));
  }

  auto errors = family("helios_proxy_errors_total", "ErrorResponses sent to clients, by SQLSTATE",
                       MetricType::Counter);
  for (const auto& [code, n] : s.counters.errors)
    add_counter(errors, {{"sqlstate", code}}, double(n));
  out.push_back(std::move(errors));

  auto preauth = family("helios_proxy_preauth_refusals_total",
                        "Clients refused before authentication, by reason", MetricType::Counter);
  for (size_t i = 0; i < s.counters.preauth_refusals.size(); ++i)
    add_counter(preauth, {{"reason", proxy::preauth_refusal_name(proxy::PreauthRefusal(i))}},
                double(s.counters.preauth_refusals[i]));
  out.push_back(std::move(preauth));
  auto logins = family("helios_proxy_login_failures_total",
                       "Logins refused at or after authentication, by reason", MetricType::Counter);
  for (size_t i = 0; i < s.counters.login_failures.size(); ++i)
    add_counter(logins, {{"reason", proxy::login_failure_name(proxy::LoginFailure(i))}},
                double(s.counters.login_failures[i]));
  out.push_back(std::move(logins));
  auto refused = family("helios_proxy_state_transitions_refused_total",
                        "State changes a state machine refused as not in its table (a bug)",
                        MetricType::Counter);
  uint64_t pool_refusals = 0;  // backend transitions the pools refused under their locks
  for (const auto& p : s.pools) pool_refusals += p.refused_transitions;
  add_counter(refused, {{"machine", "client"}},
              double(s.counters.refused_transitions[size_t(proxy::Machine::kClient)]));
  add_counter(
      refused, {{"machine", "backend"}},
      double(s.counters.refused_transitions[size_t(proxy::Machine::kBackend)] + pool_refusals));
  out.push_back(std::move(refused));
  auto violations =
      family("helios_proxy_protocol_violations_total",
             "Authenticated clients closed for a protocol violation (08P01)", MetricType::Counter);
  add_counter(violations, {}, double(s.counters.protocol_violations));
  out.push_back(std::move(violations));
  auto retries = family("helios_proxy_lease_retries_total",
                        "Transactions sent to another backend because theirs ended (terminated, "
                        "restarted) before answering anything",
                        MetricType::Counter);
  add_counter(retries, {}, double(s.counters.lease_retries));
  out.push_back(std::move(retries));
  auto replica_writes = family("helios_proxy_replica_write_retries_total",
                               "Statements routed to a replica that refused them as a write "
                               "(25006) before anything reached the client, run again on the "
                               "primary",
                               MetricType::Counter);
  add_counter(replica_writes, {}, double(s.counters.replica_write_retries));
  out.push_back(std::move(replica_writes));
  auto survived = family("helios_proxy_backend_losses_survived_total",
                         "Server connections lost during a lease (server stopped, crashed, "
                         "terminated) whose client kept its connection (transaction mode): it "
                         "got 08006 for what was in flight",
                         MetricType::Counter);
  add_counter(survived, {}, double(s.counters.backend_losses_survived));
  out.push_back(std::move(survived));
  auto query_timeouts = family("helios_proxy_query_timeouts_total",
                               "Statements the proxy cancelled because they ran longer than "
                               "query_timeout (the client gets PostgreSQL's 57014)",
                               MetricType::Counter);
  add_counter(query_timeouts, {}, double(s.counters.query_timeouts));
  out.push_back(std::move(query_timeouts));

  auto reloads =
      family("helios_proxy_reloads_total", "Configuration reloads, by result", MetricType::Counter);
  add_counter(reloads, {{"result", "ok"}}, double(s.counters.reloads_ok));
  add_counter(reloads, {{"result", "failed"}}, double(s.counters.reloads_failed));
  out.push_back(std::move(reloads));
  if (s.last_reload.attempted) {
    auto last_ok =
        family("helios_proxy_last_reload_success",
               "1 if the last reload was applied, 0 if it was refused", MetricType::Gauge);
    add_gauge(last_ok, {}, s.last_reload.ok ? 1 : 0);
    out.push_back(std::move(last_ok));
    auto last_took = family("helios_proxy_last_reload_duration_seconds",
                            "Time the last reload took, from reading the file to every worker "
                            "running with it",
                            MetricType::Gauge);
    add_gauge(last_took, {}, double(s.last_reload.took) / 1e9);
    out.push_back(std::move(last_took));
  }

  auto tenants =
      family("helios_proxy_tenants", "Distinct tenants seen since start", MetricType::Gauge);
  size_t named = 0;
  for (const auto& t : s.tenants) named += t.overflow ? 0 : 1;
  add_gauge(tenants, {}, double(named));
  out.push_back(std::move(tenants));
  auto overflow = family("helios_proxy_tenant_overflow_total",
                         "Connections of new tenants past the registry's max_tenants, sharing "
                         "one state",
                         MetricType::Counter);
  add_counter(overflow, {}, double(s.tenants_overflowed));
  out.push_back(std::move(overflow));
  auto evicted = family("helios_proxy_tenant_evictions_total",
                        "Tenants with no connections dropped from the registry, least recently "
                        "used first, to make room for new names past max_tenants",
                        MetricType::Counter);
  add_counter(evicted, {}, double(s.tenants_evicted));
  out.push_back(std::move(evicted));
}

}  // namespace

std::vector<std::string> tenant_labels(const ProxySnapshot& s) {
  std::vector<std::string> labels;
  labels.reserve(s.tenants.size());
  int64_t named = 0;
  for (const TenantSample& t : s.tenants) {
    if (!t.overflow && named < s.max_tenant_labels) {
      labels.push_back(sanitize_label_value(t.name));
      ++named;
    } else {
      labels.push_back(kOtherTenantLabel);
    }
  }
  return labels;
}

std::vector<MetricFamily> build_metric_families(const ProxySnapshot& s) {
  std::vector<MetricFamily> out;
  process_families(s, out);
  pool_families(s, out);
  tenant_families(s, out);
  fleet_families(s, out);
  return out;
}

std::string serialize_metrics(const std::vector<MetricFamily>& families) {
  prometheus::TextSerializer ser;
  return ser.Serialize(families);
}

}  // namespace helios::ops
