// One consistent-enough picture of the running proxy for /metrics and the admin API, read from
// the lock-free counters the data path already keeps (pools, tenants, workers, MetricsCounters)
// at the moment someone asks. Nothing here runs on the data path.
//
// The Prometheus families (metrics_families.h) and the admin JSON (admin_json.h) are pure
// functions of a ProxySnapshot, so they are unit-tested on hand-made snapshots.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bpf/edge_spec.h"
#include "common/atomic_histogram.h"
#include "common/clock.h"
#include "config/config.h"
#include "fleet/fleet_agent.h"
#include "pool/host_table.h"
#include "pool/pool.h"
#include "proxy/metrics_counters.h"
#include "tenant/tenant_state.h"

namespace helios::proxy {
class Proxy;
}

namespace helios::ops {

struct PoolSample {
  pool::PoolSnapshot snap;  // name, mode, total/idle/active/connecting/waiting/max/min, ...
  std::string database, user, group;
  uint64_t connects = 0, connect_failures = 0;
  uint64_t closed_lifetime = 0, closed_idle = 0, closed_over_max = 0, closed_broken = 0,
           dead_idle_detected = 0;
  uint64_t refused_transitions = 0;
  uint64_t lease_ns_total = 0;
  AtomicHistogram::Snapshot acquire_latency;
  AtomicHistogram::Snapshot lease_duration;
};

struct TenantSample {
  std::string name;
  tenant::TenantStats stats;  // stats.name is not used (it views the live state)
  config::PoolMode pool_mode = config::PoolMode::kTransaction;
  bool overflow = false;  // the registry's shared state for tenants past max_tenants
};

struct WorkerSample {
  int64_t clients = 0;
  uint64_t bytes_from_clients = 0;
  uint64_t bytes_from_backends = 0;
  int64_t recv_buffers_free = -1;
  uint64_t send_copied_bytes = 0;  // forwarded bytes copied because they had to wait
  uint64_t moved_in = 0;           // clients handed over to it (workers that follow the load)
  uint64_t moved_out = 0;          // ... and by it
  bool awake = true;               // one of SharedContext::active_workers
};

struct ReloadSample {
  bool attempted = false;  // false until the first reload
  bool ok = false;
  std::string error;
  Nanos took = 0;
};

struct ProxySnapshot {
  Nanos taken_at = 0;  // monotonic
  Nanos uptime = 0;
  bool ready = false;
  bool draining = false;
  // From the running config.
  config::PoolMode mode = config::PoolMode::kTransaction;
  config::DataPathMode data_path = config::DataPathMode::kUserspace;
  int64_t max_client_connections = 0;
  int64_t backend_max_connections = 0;  // [backend] max_connections (per default pool)
  int64_t max_tenant_labels = 100;
  bool quotas_enabled = false;
  std::string config_source;

  int64_t client_connections = 0;
  uint64_t cancel_requests = 0;
  std::vector<std::pair<std::string, uint64_t>> pins;  // by reason name (SharedContext)
  int64_t pinned_clients = 0;
  uint64_t prepared_statements = 0;       // interned statement texts held (PreparedRegistry)
  uint64_t prepared_statement_bytes = 0;  // their bytes
  uint64_t session_probes = 0;
  uint64_t session_probes_failed = 0;
  // Kernel features by name: 1 active, 0 not configured, -1 configured but unavailable.
  std::vector<std::pair<std::string, int>> kernel_features;
  std::vector<bpf::EdgeTenantCounters> edge;  // XDP guard counters per tenant prefix
  std::vector<WorkerSample> workers;
  std::vector<PoolSample> pools;
  std::vector<pool::HostStatus> hosts;  // [backend] hosts when there are several (HostTable)
  std::vector<TenantSample> tenants;    // index order (first seen first)
  uint32_t max_tenants = 0;
  uint64_t tenants_overflowed = 0;
  uint64_t tenants_evicted = 0;
  proxy::MetricsCounters::Snapshot counters;
  ReloadSample last_reload;
  std::optional<fleet::FleetView> fleet;  // [fleet] only
};

// Reads the server's state. `started` is the monotonic time the proxy started (for uptime).
ProxySnapshot take_snapshot(proxy::Proxy& server, const proxy::MetricsCounters& counters,
                            Nanos started);

// ---- Aggregates shared by /metrics and the admin API ------------------------------------------

// Sum of every pool's acquire-latency histogram (pools share the configured buckets; a pool
// whose buckets differ, e.g. across a bucket change, is skipped).
AtomicHistogram::Snapshot merged_acquire_latency(const ProxySnapshot& s);
// Sum of every tenant's rejections, all kinds (monotonic: for quota_rejections_1h).
uint64_t total_quota_rejections(const ProxySnapshot& s);

// The client-connection limit a tenant actually runs into: its own max_connections when quotas
// are enabled and it has one, else (0 = "no tenant limit", or quotas off) the global
// [connection_pool] max_client_connections. Never 0 unless that is 0 too.
int64_t effective_max_connections(const TenantSample& t, const ProxySnapshot& s);
// Reported in place of max_qps for a tenant with no QPS quota (or quotas off), so ratios stay
// finite and ~0: no proxy serves 10^9 queries/s.
inline constexpr int64_t kUnlimitedQps = 1000000000;
// The tenant's enforced QPS limit, or kUnlimitedQps.
double effective_max_qps(const TenantSample& t, const ProxySnapshot& s);
bool qps_limited(const TenantSample& t, const ProxySnapshot& s);

}  // namespace helios::ops
