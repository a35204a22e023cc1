#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ops/metrics_families.h"

using namespace helios;
using namespace helios::config;
using namespace helios::ops;
using namespace helios::proxy;

namespace {

using LabelMap = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  LabelMap labels;
  double value;
};

// A small parser of the Prometheus text format (what a scraper sees).
std::vector<Sample> parse(const std::string& text) {
  std::vector<Sample> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t brace = line.find('{');
    size_t space = line.rfind(' ');
    if (brace != std::string::npos && brace < space) {
      s.name = line.substr(0, brace);
      size_t close = line.rfind('}');
      std::string body = line.substr(brace + 1, close - brace - 1);
      size_t pos = 0;
      while (pos < body.size()) {
        size_t eq = body.find('=', pos);
        size_t q1 = eq + 1, q2 = q1 + 1;
        while (q2 < body.size() && !(body[q2] == '"' && body[q2 - 1] != '\\')) ++q2;
        s.labels[body.substr(pos, eq - pos)] = body.substr(q1 + 1, q2 - q1 - 1);
        pos = q2 + 2;  // skip '",'
      }
    } else {
      s.name = line.substr(0, space);
    }
    s.value = std::stod(line.substr(space + 1));
    out.push_back(std::move(s));
  }
  return out;
}

struct Scrape {
  std::vector<Sample> samples;
  explicit Scrape(const ProxySnapshot& s)
      : samples(parse(serialize_metrics(build_metric_families(s)))) {}

  // The value of the one sample with exactly these labels; NaN if there is none.
  double get(const std::string& name, const LabelMap& labels = {}) const {
    for (const auto& s : samples)
      if (s.name == name && s.labels == labels) return s.value;
    return std::nan("");
  }
  bool has(const std::string& name, const LabelMap& labels) const {
    return !std::isnan(get(name, labels));
  }
  size_t count(const std::string& name) const {
    size_t n = 0;
    for (const auto& s : samples) n += s.name == name;
    return n;
  }
};

TenantSample tenant_sample(std::string name, uint32_t conns, uint32_t max_conns, double max_qps,
                           double qps) {
  TenantSample t;
  t.name = std::move(name);
  t.stats.client_connections = conns;
  t.stats.limits.max_connections = max_conns;
  t.stats.limits.max_qps = max_qps;
  t.stats.current_qps = qps;
  t.pool_mode = PoolMode::kTransaction;
  return t;
}

ProxySnapshot make_snapshot() {
  ProxySnapshot s;
  s.ready = true;
  s.mode = PoolMode::kTransaction;
  s.max_client_connections = 10000;
  s.quotas_enabled = true;
  s.max_tenant_labels = 2;
  s.client_connections = 42;
  s.workers = {{20, 1000, 5000}, {22, 500, 2500}};

  PoolSample p;
  p.snap.name = "app/app";
  p.snap.mode = PoolMode::kTransaction;
  p.snap.total = 5;
  p.snap.idle = 2;
  p.snap.active = 3;
  p.snap.max = 20;
  p.snap.waiting = 1;
  p.snap.acquires = 100;
  p.snap.releases = 97;
  p.closed_lifetime = 4;
  AtomicHistogram h({0.001, 0.01});
  h.observe(500 * kNanosPerMicro);
  h.observe(5 * kNanosPerMilli);
  h.observe(2 * kNanosPerSec);
  p.acquire_latency = h.snapshot();
  p.lease_duration = AtomicHistogram({0.001, 0.01}).snapshot();
  s.pools.push_back(p);

  PoolSample q = p;
  q.snap.name = "bench/bench/tier:gold";
  q.snap.mode = PoolMode::kSession;
  q.snap.max = 7;
  s.pools.push_back(q);

  auto a = tenant_sample("tenant_a", 10, 50, 100, 12.5);
  a.stats.rejections[size_t(tenant::Rejection::kQps)] = 3;
  a.stats.queries_total = 200;
  a.stats.avg_query_ms = 2.0;
  auto b = tenant_sample("tenant_b", 4, 0, 0, 1);  // no limits
  auto c = tenant_sample("tenant_c", 1, 5, 10, 2);
  c.stats.rejections[size_t(tenant::Rejection::kConnections)] = 2;
  c.stats.queries_total = 100;
  c.stats.avg_query_ms = 5.0;
  auto o = tenant_sample("(other)", 2, 5, 10, 3);
  o.overflow = true;
  o.stats.rejections[size_t(tenant::Rejection::kConnections)] = 1;
  s.tenants = {a, b, c, o};

  s.counters.errors = {{"53300", 7}, {"other", 1}};
  s.pins = {{"temp_table", 0}, {"listen", 2}};
  s.pinned_clients = 3;
  s.counters.bytes[size_t(BytePath::kKernel)][size_t(ByteDirection::kClientToServer)] = 9;
  s.counters.bytes[size_t(BytePath::kUserspace)][size_t(ByteDirection::kClientToServer)] = 1;
  s.last_reload = {true, true, "", 3 * kNanosPerMilli};
  return s;
}

const LabelMap kAppPool{{"pool", "app/app"}, {"pool_mode", "transaction"}};

}  // namespace

TEST_CASE("pool gauges and counters carry pool and pool_mode") {
  Scrape m(make_snapshot());
  CHECK(m.get("helios_proxy_backend_connections_active", kAppPool) == 3);
  CHECK(m.get("helios_proxy_backend_connections_idle", kAppPool) == 2);
  CHECK(m.get("helios_proxy_backend_connections", kAppPool) == 5);
  CHECK(m.get("helios_proxy_backend_connections_max", kAppPool) == 20);
  CHECK(m.get("helios_proxy_waiting_clients", kAppPool) == 1);
  CHECK(m.get("helios_proxy_acquires_total", kAppPool) == 100);
  CHECK(m.get("helios_proxy_releases_total", kAppPool) == 97);
  CHECK(m.get("helios_proxy_backend_connections_max",
              {{"pool", "bench/bench/tier:gold"}, {"pool_mode", "session"}}) == 7);
  LabelMap lifetime = kAppPool;
  lifetime["reason"] = "lifetime";
  CHECK(m.get("helios_proxy_backend_closed_total", lifetime) == 4);
}

TEST_CASE("acquire latency is a histogram with the configured buckets and +Inf") {
  Scrape m(make_snapshot());
  auto le = [](const char* v) {
    LabelMap l = kAppPool;
    l["le"] = v;
    return l;
  };
  CHECK(m.get("helios_proxy_acquire_latency_seconds_bucket", le("0.001")) == 1);
  CHECK(m.get("helios_proxy_acquire_latency_seconds_bucket", le("0.01")) == 2);
  CHECK(m.get("helios_proxy_acquire_latency_seconds_bucket", le("+Inf")) == 3);
  CHECK(m.get("helios_proxy_acquire_latency_seconds_count", kAppPool) == 3);
  CHECK(m.get("helios_proxy_acquire_latency_seconds_sum", kAppPool) ==
        doctest::Approx(2.0055).epsilon(1e-6));
  // An empty histogram still has its +Inf bucket (lease duration here).
  CHECK(m.get("helios_proxy_lease_duration_seconds_bucket", le("+Inf")) == 0);
}

TEST_CASE("tenant metrics: own labels for the first max_tenant_labels, the rest as other") {
  ProxySnapshot s = make_snapshot();
  Scrape m(s);
  LabelMap a{{"tenant_id", "tenant_a"}, {"pool_mode", "transaction"}};
  LabelMap b{{"tenant_id", "tenant_b"}, {"pool_mode", "transaction"}};
  LabelMap other{{"tenant_id", "other"}, {"pool_mode", "transaction"}};
  CHECK(m.get("helios_proxy_tenant_connections", a) == 10);
  CHECK(m.get("helios_proxy_tenant_max_connections", a) == 50);
  CHECK(m.get("helios_proxy_tenant_max_qps", a) == 100);
  CHECK(m.get("helios_proxy_tenant_qps", a) == 12.5);
  CHECK(m.get("helios_proxy_tenant_queries_total", a) == 200);
  CHECK(m.get("helios_proxy_tenant_avg_query_seconds", a) == doctest::Approx(0.002));
  // No connection quota: the global cap is what the tenant can hit, so a ratio stays finite.
  CHECK(m.get("helios_proxy_tenant_max_connections", b) == 10000);
  // No QPS quota: no max_qps sample at all (a PromQL ratio then has no result, never +Inf).
  CHECK_FALSE(m.has("helios_proxy_tenant_max_qps", b));
  // tenant_c and the registry's overflow state are summed under "other".
  CHECK(m.get("helios_proxy_tenant_connections", other) == 3);
  CHECK(m.get("helios_proxy_tenant_max_connections", other) == 10);
  CHECK(m.get("helios_proxy_tenant_max_qps", other) == 20);
  CHECK(m.get("helios_proxy_tenant_label_members", other) == 2);
  // Re-averaged by query count: (100 queries x 5 ms + 0) / 100.
  CHECK(m.get("helios_proxy_tenant_avg_query_seconds", other) == doctest::Approx(0.005));
  LabelMap rej = other;
  rej["reason"] = "connections";
  CHECK(m.get("helios_proxy_quota_rejections_total", rej) == 3);
  LabelMap rej_a = a;
  rej_a["reason"] = "qps";
  CHECK(m.get("helios_proxy_quota_rejections_total", rej_a) == 3);
  CHECK(m.count("helios_proxy_tenant_connections") == 3);

  CHECK(tenant_labels(s) == std::vector<std::string>{"tenant_a", "tenant_b", "other", "other"});
}

TEST_CASE("a larger label budget names every tenant; the overflow state stays other") {
  ProxySnapshot s = make_snapshot();
  s.max_tenant_labels = 100;
  CHECK(tenant_labels(s) == std::vector<std::string>{"tenant_a", "tenant_b", "tenant_c", "other"});
  s.max_tenant_labels = 0;
  Scrape m(s);
  CHECK(m.count("helios_proxy_tenant_connections") == 1);
  CHECK(m.get("helios_proxy_tenant_connections",
              {{"tenant_id", "other"}, {"pool_mode", "transaction"}}) == 17);
}

TEST_CASE("tenants in different pool modes get separate series") {
  ProxySnapshot s = make_snapshot();
  s.tenants[1].pool_mode = PoolMode::kSession;
  Scrape m(s);
  CHECK(m.get("helios_proxy_tenant_connections",
              {{"tenant_id", "tenant_b"}, {"pool_mode", "session"}}) == 4);
  CHECK_FALSE(m.has("helios_proxy_tenant_connections",
                    {{"tenant_id", "tenant_b"}, {"pool_mode", "transaction"}}));
}

TEST_CASE("with quotas off, tenant limits are not reported as enforced") {
  ProxySnapshot s = make_snapshot();
  s.quotas_enabled = false;
  Scrape m(s);
  LabelMap a{{"tenant_id", "tenant_a"}, {"pool_mode", "transaction"}};
  CHECK(m.get("helios_proxy_tenant_max_connections", a) == 10000);
  CHECK_FALSE(m.has("helios_proxy_tenant_max_qps", a));
}

TEST_CASE("process metrics: clients, bytes per data path, pins, errors, reloads") {
  Scrape m(make_snapshot());
  CHECK(m.get("helios_proxy_client_connections") == 42);
  CHECK(m.get("helios_proxy_client_connections_max") == 10000);
  CHECK(m.get("helios_proxy_ready") == 1);
  CHECK(m.get("helios_proxy_worker_clients", {{"worker", "1"}}) == 22);
  // User-space bytes: the workers' counts (+ anything added through MetricsCounters).
  CHECK(m.get("helios_proxy_bytes_total",
              {{"data_path", "userspace"}, {"direction", "client_to_server"}}) == 1501);
  CHECK(m.get("helios_proxy_bytes_total",
              {{"data_path", "userspace"}, {"direction", "server_to_client"}}) == 7500);
  CHECK(m.get("helios_proxy_bytes_total",
              {{"data_path", "kernel"}, {"direction", "client_to_server"}}) == 9);
  CHECK(m.get("helios_proxy_pins_total", {{"reason", "listen"}}) == 2);
  CHECK(m.get("helios_proxy_pins_total", {{"reason", "temp_table"}}) == 0);
  CHECK(m.get("helios_proxy_pinned_clients") == 3);
  CHECK(m.get("helios_proxy_errors_total", {{"sqlstate", "53300"}}) == 7);
  CHECK(m.get("helios_proxy_errors_total", {{"sqlstate", "other"}}) == 1);
  CHECK(m.get("helios_proxy_last_reload_success") == 1);
  CHECK(m.get("helios_proxy_last_reload_duration_seconds") == doctest::Approx(0.003));
  CHECK(m.get("helios_proxy_tenants") == 3);  // the overflow state is not a tenant
}

TEST_CASE("no reload yet: no last-reload gauges; draining: not ready") {
  ProxySnapshot s = make_snapshot();
  s.last_reload = {};
  s.draining = true;
  Scrape m(s);
  CHECK(m.count("helios_proxy_last_reload_success") == 0);
  CHECK(m.get("helios_proxy_ready") == 0);
  CHECK(m.get("helios_proxy_draining") == 1);
}

TEST_CASE("label values are escaped in the text format") {
  ProxySnapshot s = make_snapshot();
  s.tenants[0].name = "we\"ird\\name";
  std::string text = serialize_metrics(build_metric_families(s));
  CHECK(text.find("tenant_id=\"we\\\"ird\\\\name\"") != std::string::npos);
}
