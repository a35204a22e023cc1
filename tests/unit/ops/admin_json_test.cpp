#include <doctest/doctest.h>

#include <set>
#include <string>

#include "ops/admin_json.h"

using namespace helios;
using namespace helios::config;
using namespace helios::ops;
using nlohmann::json;

namespace {

std::set<std::string> keys(const json& j) {
  std::set<std::string> k;
  for (const auto& [name, v] : j.items()) k.insert(name);
  return k;
}

PoolSample pool(std::string name, int64_t total, int64_t idle, int64_t max, int64_t waiting) {
  PoolSample p;
  p.snap.name = std::move(name);
  p.snap.mode = PoolMode::kTransaction;
  p.snap.total = total;
  p.snap.idle = idle;
  p.snap.active = total - idle;
  p.snap.max = max;
  p.snap.waiting = waiting;
  p.acquire_latency = AtomicHistogram({0.001, 0.01, 0.1}).snapshot();
  p.lease_duration = p.acquire_latency;
  return p;
}

TenantSample tenant(std::string name, uint32_t conns, uint32_t max_conns, double max_qps) {
  TenantSample t;
  t.name = std::move(name);
  t.stats.client_connections = conns;
  t.stats.limits.max_connections = max_conns;
  t.stats.limits.max_qps = max_qps;
  return t;
}

ProxySnapshot snapshot() {
  ProxySnapshot s;
  s.mode = PoolMode::kTransaction;
  s.max_client_connections = 10000;
  s.quotas_enabled = true;
  s.client_connections = 30;
  PoolSample a = pool("app/app", 10, 4, 20, 2);
  AtomicHistogram h({0.001, 0.01, 0.1});
  for (int i = 0; i < 98; ++i) h.observe(200 * kNanosPerMicro);  // 0.2 ms
  h.observe(50 * kNanosPerMilli);
  h.observe(50 * kNanosPerMilli);
  a.acquire_latency = h.snapshot();
  a.snap.acquires = 100;
  a.snap.releases = 80;
  a.lease_ns_total = 80 * 23 * kNanosPerMilli;  // 23 ms each
  s.pools.push_back(a);
  PoolSample b = pool("bench/bench", 5, 5, 10, 1);
  b.snap.acquires = 20;
  b.snap.releases = 20;
  b.lease_ns_total = 20 * 3 * kNanosPerMilli;
  s.pools.push_back(b);
  TenantSample t1 = tenant("tenant_small", 3, 100, 2000);
  TenantSample t2 = tenant("enterprise_big", 25, 500, 10000);
  t2.stats.current_qps = 7200.456;
  t2.stats.avg_query_ms = 12.4567;
  t2.stats.active_leases = 4;
  t2.stats.queued = 1;
  t2.stats.rejections[size_t(tenant::Rejection::kConnections)] = 5;
  TenantSample t3 = tenant("free_x", 2, 0, 0);  // unlimited
  s.tenants = {t1, t2, t3};
  return s;
}

}  // namespace

TEST_CASE("/pool/stats has exactly the tutorial's fields, summed over pools") {
  json j = tutorial_pool_stats_json(snapshot());
  CHECK(keys(j) == std::set<std::string>{"mode", "total_connections", "active_leases",
                                         "idle_connections", "waiting_requests", "total_acquires",
                                         "total_releases", "avg_lease_duration_ms"});
  CHECK(j["mode"] == "transaction");
  CHECK(j["total_connections"] == 15);
  CHECK(j["active_leases"] == 6);
  CHECK(j["idle_connections"] == 9);
  CHECK(j["waiting_requests"] == 3);
  CHECK(j["total_acquires"] == 120);
  CHECK(j["total_releases"] == 100);
  // (80 x 23 + 20 x 3) / 100 = 19 ms
  CHECK(j["avg_lease_duration_ms"].get<double>() == doctest::Approx(19.0));
}

TEST_CASE("/api/v1/pool/stats carries every field the monitoring script reads") {
  json j = pool_stats_json(snapshot(), 23);
  for (const char* k : {"active", "max", "idle", "client_connections", "avg_acquire_ms",
                        "p99_acquire_ms", "queued_clients", "quota_rejections_1h"})
    CHECK_MESSAGE(j.contains(k), k);
  CHECK(j["active"] == 6);
  CHECK(j["max"] == 30);
  CHECK(j["idle"] == 9);
  CHECK(j["client_connections"] == 30);
  CHECK(j["queued_clients"] == 3);
  CHECK(j["quota_rejections_1h"] == 23);
  CHECK(j["quota_rejections_total"] == 5);
  // 98 x 0.2 ms + 2 x 50 ms over 100 acquires.
  CHECK(j["avg_acquire_ms"].get<double>() == doctest::Approx(1.196));
  // The 99th of 100 lies in the (10 ms, 100 ms] bucket.
  double p99 = j["p99_acquire_ms"].get<double>();
  CHECK(p99 > 10.0);
  CHECK(p99 <= 100.0);
  REQUIRE(j["pools"].size() == 2);
  CHECK(j["pools"][0]["name"] == "app/app");
  CHECK(j["pools"][0]["max"] == 20);
  CHECK(j["pools"][1]["waiting"] == 1);
}

TEST_CASE("/api/v1/tenants/stats: script fields, busiest first, no zero limits") {
  json j = tenants_stats_json(snapshot(), 1000);
  REQUIRE(j["tenants"].size() == 3);
  const json& big = j["tenants"][0];
  CHECK(big["id"] == "enterprise_big");
  for (const char* k : {"id", "connections", "max_connections", "current_qps", "max_qps",
                        "avg_query_ms", "active_transactions", "queued_requests"})
    CHECK_MESSAGE(big.contains(k), k);
  CHECK(big["connections"] == 25);
  CHECK(big["max_connections"] == 500);
  CHECK(big["max_qps"] == 10000);
  CHECK(big["current_qps"].get<double>() == doctest::Approx(7200.46));
  CHECK(big["avg_query_ms"].get<double>() == doctest::Approx(12.457));
  CHECK(big["active_transactions"] == 4);
  CHECK(big["queued_requests"] == 1);
  CHECK(big["rejections"]["connections"] == 5);
  CHECK(j["tenants"][1]["id"] == "tenant_small");
  const json& free = j["tenants"][2];
  CHECK(free["id"] == "free_x");
  // Limit 0 = unlimited: the effective cap, never 0.
  CHECK(free["max_connections"] == 10000);
  CHECK(free["connections_limited"] == false);
  CHECK(free["max_qps"] == kUnlimitedQps);
  CHECK(free["qps_limited"] == false);
  CHECK(j["total_tenants"] == 3);
}

TEST_CASE("tenants stats honours the limit and the quotas switch") {
  ProxySnapshot s = snapshot();
  CHECK(tenants_stats_json(s, 1)["tenants"].size() == 1);
  CHECK(tenants_stats_json(s, 0)["tenants"].empty());
  s.quotas_enabled = false;
  json j = tenants_stats_json(s, 10);
  CHECK(j["tenants"][0]["max_connections"] == 10000);
  CHECK(j["tenants"][0]["max_qps"] == kUnlimitedQps);
}

TEST_CASE("a tenant name with invalid UTF-8 can still be serialized") {
  ProxySnapshot s = snapshot();
  s.tenants[0].name = std::string("bad\xff\xfename");
  json j = tenants_stats_json(s, 10);
  std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  CHECK(text.find("bad") != std::string::npos);
}

TEST_CASE("status shows readiness, reload outcome and totals") {
  ProxySnapshot s = snapshot();
  s.ready = true;
  json j = status_json(s);
  CHECK(j["ready"] == true);
  CHECK(j["last_reload"].is_null());
  CHECK(j["backend_connections"] == 15);
  s.draining = true;
  s.last_reload = {true, false, "proxy.toml:3: bad value", 2 * kNanosPerMilli};
  j = status_json(s);
  CHECK(j["ready"] == false);
  CHECK(j["draining"] == true);
  CHECK(j["last_reload"]["ok"] == false);
  CHECK(j["last_reload"]["error"] == "proxy.toml:3: bad value");
}
