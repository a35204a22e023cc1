// The admin API's JSON documents, as pure functions of a ProxySnapshot.
//
//   /pool/stats          the pool-modes tutorial's fields (seed 001), summed over all pools
//   /api/v1/pool/stats   the fields seed 000's monitoring script reads, plus a "pools" array
//   /api/v1/tenants/stats  "tenants": [...] with the script's fields, plus totals
//   /api/v1/status       what heliosctl status shows
//
// Limits of 0 mean "unlimited" in the config. The documents never report a 0 limit a client
// would divide by: max_connections is the effective cap (the tenant's own, else the global
// max_client_connections) and max_qps is kUnlimitedQps when the tenant has no QPS quota; the
// booleans connections_limited / qps_limited tell which it is.
#pragma once

#include <nlohmann/json.hpp>

#include "ops/metrics_snapshot.h"

namespace helios::ops {

nlohmann::json tutorial_pool_stats_json(const ProxySnapshot& s);
// quota_rejections_1h: rejections of all tenants over the last hour (CounterWindow).
nlohmann::json pool_stats_json(const ProxySnapshot& s, uint64_t quota_rejections_1h);
// Tenants sorted by connections (descending), then name; at most `limit` of them.
nlohmann::json tenants_stats_json(const ProxySnapshot& s, size_t limit);
nlohmann::json status_json(const ProxySnapshot& s);
// GET /api/v1/fleet (fleet_json.cpp): {"enabled": false} without [fleet].
nlohmann::json fleet_json(const ProxySnapshot& s);
// GET /api/v1/hosts: role, ban, lag and routed leases of every [backend] host.
nlohmann::json hosts_json(const ProxySnapshot& s);

// Milliseconds rounded to 3 decimals (microseconds), as the documents report them.
double round_ms(double ms);

}  // namespace helios::ops
