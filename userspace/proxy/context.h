// What the workers share: the backend table, pools, connector threads, auth lookups, interned
// parameter sets, global limits and the directory of workers. Owned by Server, passed by
// reference (no globals).
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "bpf/sockmap_splice.h"
#include "bpf/xdp_guard.h"
#include "config/config.h"
#include "fleet/fleet_agent.h"
#include "io/tls.h"
#include "pool/backend_table.h"
#include "pool/connector.h"
#include "pool/health_checker.h"
#include "pool/host_table.h"
#include "pool/pool_manager.h"
#include "proxy/auth_service.h"
#include "proxy/cancel_key.h"
#include "proxy/fleet_admission.h"
#include "proxy/metrics_counters.h"
#include "proxy/moved_clients.h"
#include "proxy/preauth_sources.h"
#include "session/params.h"
#include "session/prepared_registry.h"
#include "session/sql_inspect.h"
#include "tenant/tenant_gates.h"
#include "tenant/tenant_registry.h"

namespace helios::proxy {

class Worker;
struct Client;
using RuntimeConfig = config::Config;

struct SharedContext {
  explicit SharedContext(uint32_t max_tenants = tenant::TenantRegistry::kDefaultMaxTenants)
      : tenants(max_tenants), gates(max_tenants) {}
  pool::BackendTable backends;
  std::unique_ptr<pool::Connector> connector;
  std::unique_ptr<pool::PoolManager> pools;
  std::unique_ptr<AuthService> auth;
  session::ParamInterner params;
  std::vector<Worker*> workers;
  std::atomic<int64_t> client_connections{0};
  std::atomic<uint64_t> cancel_requests{0};
  // Workers that follow the load ([proxy] worker_scaling, proxy/load_governor.h): workers
  // 0..active_workers-1 are awake; the others hand their clients over and only accept and log in.
  std::atomic<uint32_t> active_workers{1};
  MovedClients moved;                  // clients that changed worker since login, for their cancels
  CancelKeyLayout cancel_keys{false};  // with [fleet]: a peer number in every key (set at start)
  // A messenger for threads that are not workers (connector, control thread).
  std::function<std::unique_ptr<pool::Messenger>()> make_messenger;
  tenant::TenantRegistry tenants;
  tenant::TenantGates gates;
  std::string mock_scram_key;  // random per process: mock secrets for unknown users
  session::PreparedRegistry prepared;
  std::array<std::atomic<uint64_t>, size_t(session::PinReason::kCount)>
      pins_total{};                                // pins by reason
  std::atomic<int64_t> pinned_clients{0};          // clients whose lease is pinned right now
  std::atomic<uint64_t> session_probes{0};         // session-state probes sent (worker_probe.cpp)
  std::atomic<uint64_t> session_probes_failed{0};  // ... whose answer could not be read
  MetricsCounters metrics;                         // errors by SQLSTATE, reloads, kernel-path bytes
  PreauthSources preauth;                          // unauthenticated connections per source address
  // Kernel features: 0 = not configured, 1 = active, -1 = configured but unavailable here.
  enum KernelFeature {
    kEdgeGuard,
    kVipSteering,
    kSameHostBypass,
    kLeaseSplicing,
    kKernelFeatureCount
  };
  std::array<std::atomic<int>, kKernelFeatureCount> kernel_features{};
  bpf::EdgeGuard* edge_guard = nullptr;  // set once at start when the XDP guard is attached
  // Lease splicing (data_path kernel/auto, docs/datapath.md): loaded once at start, else null.
  bpf::SpliceEngine* splice = nullptr;
  // [backend] hosts with more than one entry: their roles and health (proxy/backend_route.h),
  // else both null and every lease goes to the one host.
  std::unique_ptr<pool::HostTable> hosts;
  std::unique_ptr<pool::HealthChecker> health;

  // Server-side TLS for clients ([tls]); replaced on reload so new certificates apply to new
  // connections.
  std::shared_ptr<io::TlsContext> client_tls() const {
    std::lock_guard lock(tls_mu);
    return client_tls_ctx;
  }
  void set_client_tls(std::shared_ptr<io::TlsContext> ctx) {
    std::lock_guard lock(tls_mu);
    client_tls_ctx = std::move(ctx);
  }
  mutable std::mutex tls_mu;
  std::shared_ptr<io::TlsContext> client_tls_ctx;
  std::atomic<bool> quotas_enabled{false};
  // [fleet]: the agent that keeps this instance's slices (null without [fleet]) and the logins
  // waiting for a connection share.
  fleet::FleetAgent* fleet = nullptr;
  std::unique_ptr<tenant::FleetCaps> fleet_caps;  // its shares (null without [fleet])
  uint32_t connection_cap(const tenant::TenantState* t) const {
    return fleet_caps ? fleet_caps->connections(t->index()) : tenant::TenantState::kNoCap;
  }
  uint32_t active_cap(const tenant::TenantState* t) const {
    return fleet_caps ? fleet_caps->active(t->index()) : tenant::TenantState::kNoCap;
  }
  FleetAdmission fleet_admission;

  // ---- tenant hooks called by workers (proxy/context.cpp)
  // Identifies the client's tenant and applies its connection limit.
  // Refused with EACCES when `user` may not claim `tenant` (allowed_users), EUSERS when the
  // tenant is at max_connections, EAGAIN when this instance's fleet share is full (the login
  // may wait for the fleet agent: FleetAdmission).
  Status admit_client(Client* c, const std::string& tenant, const std::string& user,
                      const config::Config& cfg);
  void on_client_closed(Client* c);
  // The pool group of the client's tenant: "" (default pool), or its tier pool.
  std::string pool_group_for(const Client* c, const config::Config& cfg) const;
  // Fair-queue identity of a client about to wait: tenant index and weight.
  void fill_waiter(Client* c) const;
  void on_lease_start(Client* c, Nanos waited);
  void on_lease_end(Client* c);
};

// Tenant rules and default limits from the config, as the tenant layer wants them.
std::vector<tenant::TenantRule> tenant_rules_from(const config::Config& cfg);
tenant::TenantLimits default_tenant_limits_from(const config::Config& cfg);

}  // namespace helios::proxy
