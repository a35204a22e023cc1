#include "ops/admin_json.h"

#include <algorithm>
#include <cmath>

namespace helios::ops {
namespace {

using nlohmann::json;

double avg_ms(const AtomicHistogram::Snapshot& h) {
  return h.count ? h.sum_seconds * 1000.0 / double(h.count) : 0;
}

double p99_ms(const AtomicHistogram::Snapshot& h) {
  return h.quantile(0.99) * 1000.0;
}

double round2(double v) {
  return std::round(v * 100.0) / 100.0;
}

json pool_json(const PoolSample& p) {
  return json{
      {"name", p.snap.name},
      {"database", p.database},
      {"user", p.user},
      {"group", p.group},
      {"mode", std::string(config::to_string(p.snap.mode))},
      {"total", p.snap.total},
      {"active", p.snap.active},
      {"idle", p.snap.idle},
      {"connecting", p.snap.connecting},
      {"waiting", p.snap.waiting},
      {"max", p.snap.max},
      {"min", p.snap.min},
      {"acquires", p.snap.acquires},
      {"releases", p.snap.releases},
      {"avg_lease_ms", round_ms(p.snap.avg_lease_ms)},
      {"avg_acquire_ms", round_ms(avg_ms(p.acquire_latency))},
      {"p99_acquire_ms", round_ms(p99_ms(p.acquire_latency))},
      {"connects", p.connects},
      {"connect_failures", p.connect_failures},
      {"last_connect_error", p.snap.last_connect_error},
  };
}

}  // namespace

double round_ms(double ms) {
  return std::round(ms * 1000.0) / 1000.0;
}

namespace {

// Every pool's counts added up.
struct PoolTotals {
  int64_t total = 0, active = 0, idle = 0, waiting = 0, max = 0, connecting = 0;
  uint64_t acquires = 0, releases = 0, lease_ns = 0;
};

PoolTotals pool_totals(const ProxySnapshot& s) {
  PoolTotals t;
  for (const PoolSample& p : s.pools) {
    t.total += p.snap.total;
    t.active += p.snap.active;
    t.idle += p.snap.idle;
    t.waiting += p.snap.waiting;
    t.max += p.snap.max;
    t.connecting += p.snap.connecting;
    t.acquires += p.snap.acquires;
    t.releases += p.snap.releases;
    t.lease_ns += p.lease_ns_total;
  }
  return t;
}

}  // namespace

json tutorial_pool_stats_json(const ProxySnapshot& s) {
  PoolTotals t = pool_totals(s);
  return json{
      {"mode", std::string(config::to_string(s.mode))},
      {"total_connections", t.total},
      {"active_leases", t.active},
      {"idle_connections", t.idle},
      {"waiting_requests", t.waiting},
      {"total_acquires", t.acquires},
      {"total_releases", t.releases},
      {"avg_lease_duration_ms",
       round_ms(t.releases ? double(t.lease_ns) / double(t.releases) / 1e6 : 0)},
  };
}

json pool_stats_json(const ProxySnapshot& s, uint64_t quota_rejections_1h) {
  PoolTotals t = pool_totals(s);
  json pools = json::array();
  for (const PoolSample& p : s.pools) pools.push_back(pool_json(p));
  AtomicHistogram::Snapshot acquire = merged_acquire_latency(s);
  return json{
      {"mode", std::string(config::to_string(s.mode))},
      {"active", t.active},
      {"max", t.max},
      {"idle", t.idle},
      {"total", t.total},
      {"connecting", t.connecting},
      {"client_connections", s.client_connections},
      {"max_client_connections", s.max_client_connections},
      {"avg_acquire_ms", round_ms(avg_ms(acquire))},
      {"p99_acquire_ms", round_ms(p99_ms(acquire))},
      {"acquires", acquire.count},
      {"queued_clients", t.waiting},
      {"quota_rejections_1h", quota_rejections_1h},
      {"quota_rejections_total", total_quota_rejections(s)},
      {"pools", std::move(pools)},
  };
}

json tenants_stats_json(const ProxySnapshot& s, size_t limit) {
  std::vector<const TenantSample*> order;
  for (const TenantSample& t : s.tenants) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TenantSample* a, const TenantSample* b) {
    if (a->stats.client_connections != b->stats.client_connections)
      return a->stats.client_connections > b->stats.client_connections;
    return a->name < b->name;
  });
  json tenants = json::array();
  for (const TenantSample* t : order) {
    if (tenants.size() >= limit) break;
    const tenant::TenantStats& st = t->stats;
    json rejections = json::object();
    for (size_t r = 0; r < st.rejections.size(); ++r)
      rejections[tenant::rejection_name(tenant::Rejection(r))] = st.rejections[r];
    bool conn_limited = s.quotas_enabled && st.limits.max_connections > 0;
    double max_qps = effective_max_qps(*t, s);
    tenants.push_back(json{
        {"id", t->name},
        {"connections", st.client_connections},
        {"max_connections", effective_max_connections(*t, s)},
        {"connections_limited", conn_limited},
        {"current_qps", round2(st.current_qps)},
        {"max_qps", std::floor(max_qps) == max_qps ? json(int64_t(max_qps)) : json(max_qps)},
        {"qps_limited", qps_limited(*t, s)},
        {"avg_query_ms", round_ms(st.avg_query_ms)},
        {"active_transactions", st.active_leases},
        {"max_active", st.limits.max_active},
        {"queued_requests", st.queued},
        {"queries_total", st.queries_total},
        {"transactions_total", st.transactions_total},
        {"rejections", std::move(rejections)},
        {"pool_mode", std::string(config::to_string(t->pool_mode))},
        {"overflow", t->overflow},
    });
  }
  size_t named = 0;
  for (const TenantSample& t : s.tenants) named += t.overflow ? 0 : 1;
  return json{
      {"quotas_enabled", s.quotas_enabled}, {"total_tenants", named},
      {"max_tenants", s.max_tenants},       {"overflowed", s.tenants_overflowed},
      {"tenants", std::move(tenants)},
  };
}

json status_json(const ProxySnapshot& s) {
  int64_t total = 0, active = 0, idle = 0, waiting = 0;
  for (const PoolSample& p : s.pools) {
    total += p.snap.total;
    active += p.snap.active;
    idle += p.snap.idle;
    waiting += p.snap.waiting;
  }
  json reload = nullptr;
  if (s.last_reload.attempted)
    reload = json{{"ok", s.last_reload.ok},
                  {"error", s.last_reload.error},
                  {"took_ms", round_ms(double(s.last_reload.took) / 1e6)}};
  size_t named = 0;
  for (const TenantSample& t : s.tenants) named += t.overflow ? 0 : 1;
  return json{
      {"version", HELIOS_VERSION},
      {"ready", s.ready && !s.draining},
      {"draining", s.draining},
      {"uptime_s", round_ms(double(s.uptime) / 1e9)},
      {"config", s.config_source},
      {"mode", std::string(config::to_string(s.mode))},
      {"data_path", std::string(config::to_string(s.data_path))},
      {"workers", s.workers.size()},
      {"client_connections", s.client_connections},
      {"max_client_connections", s.max_client_connections},
      {"pools", s.pools.size()},
      {"backend_connections", total},
      {"backend_active", active},
      {"backend_idle", idle},
      {"waiting_clients", waiting},
      {"tenants", named},
      {"quotas_enabled", s.quotas_enabled},
      {"last_reload", std::move(reload)},
  };
}

json hosts_json(const ProxySnapshot& s) {
  json hosts = json::array();
  for (const auto& h : s.hosts)
    hosts.push_back(json{
        {"address", h.address},
        {"role", pool::to_string(h.role)},
        {"banned", h.banned},
        {"lagging", h.lagging},
        {"lag_seconds", round2(h.lag_seconds)},
        {"lag_bytes", h.lag_bytes},
        {"wal_lsn", h.wal_lsn},
        {"routed", h.routed},
        {"checks_failed", h.checks_failed},
        {"last_error", h.last_error},
    });
  return json{{"hosts", hosts}};
}

}  // namespace helios::ops
