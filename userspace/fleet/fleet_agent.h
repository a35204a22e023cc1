// The fleet agent: one thread per proxy that keeps this instance's slices of every fleet-wide
// tenant limit (docs/fleet.md). Once per renew_interval (or sooner when kicked) it reports the
// local use and demand of every limited tenant to Redis in one Lua script and applies the
// slices it gets back to the tenants' states (atomics the hot path already reads). The per-query
// path never waits for it. When Redis cannot be reached it applies static shares (limit / the
// instances last seen alive), logs once, reports degraded, and retries every interval.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "fleet/cancel_forwarder.h"
#include "fleet/redis_conn.h"
#include "tenant/fleet_caps.h"
#include "tenant/tenant_registry.h"

namespace helios::fleet {

// One limit of one tenant as the last renewal left it.
struct ShareView {
  std::string tenant;
  char limit_kind = 'c';  // c: max_connections, a: max_active, q: max_qps, p: a pool's backends
  double limit = 0;       // the fleet-wide limit
  double share = 0;       // this instance's slice
  double used = 0;
  double want = 0;
};

struct FleetView {
  std::string instance_id;
  std::string redis;  // host:port/db
  bool degraded = false;
  uint32_t live_instances = 0;
  std::vector<std::string> instances;
  uint64_t renewals = 0;
  uint64_t failures = 0;
  double last_renewal_ms = 0;  // duration of the last successful renewal
  std::vector<ShareView> shares;
  uint32_t peer = 0;               // this instance's number in the cancel keys (0: none yet)
  std::string cancel_address;      // where the others forward cancels to this one
  std::vector<PeerAddress> peers;  // the other live instances with a number and an address
  CancelCounters cancels;
};

// Peer numbers go up to this (8 bits of the process id in the cancel key: proxy/cancel_key.h).
constexpr uint32_t kMaxPeerNumber = 255;

// A limit the agent shares without knowing what it is (a pool's max_connections): the proxy
// reports use and demand, and applies the slice it gets back.
struct ExternalLimit {
  std::string key;  // unique, stable: "<database>/<user>[/<group>]" for a pool
  double limit = 0, used = 0, want = 0;
};

class FleetAgent {
 public:
  // info: what other instances may read about this one (the admin address, ...).
  // caps: where the shares of max_connections and max_active go (by tenant index).
  FleetAgent(const config::FleetConfig& cfg, tenant::TenantRegistry& tenants,
             tenant::FleetCaps& caps, std::string info);
  ~FleetAgent();
  FleetAgent(const FleetAgent&) = delete;
  FleetAgent& operator=(const FleetAgent&) = delete;

  // Hooks, set before start(): a tenant's local max_active share grew (wake its gate waiters);
  // a renewal (or a failed one) applied its shares (admit waiting logins).
  void on_active_grew(std::function<void(tenant::TenantState*)> fn) {
    active_grew_ = std::move(fn);
  }
  void on_renewed(std::function<void()> fn) { renewed_ = std::move(fn); }
  // External limits: collected and applied on the agent's thread at every renewal.
  void on_external(std::function<std::vector<ExternalLimit>()> collect,
                   std::function<void(const std::string& key, double slice)> apply) {
    collect_external_ = std::move(collect);
    apply_external_ = std::move(apply);
  }

  void start();
  void stop();
  // Renew now (a login waits for a share).
  void kick();
  // Initial shares of a tenant state just made (the registry's on_create hook): the static
  // share until the next renewal.
  void init_state(tenant::TenantState& t);
  // Logins of a tenant waiting for a connection share (their count is demand).
  void add_waiting(uint32_t tenant_index, int delta);

  bool degraded() const { return degraded_.load(std::memory_order_relaxed); }
  uint32_t live_instances() const { return live_.load(std::memory_order_relaxed); }
  const config::FleetConfig& config() const { return cfg_; }
  FleetView view() const;
  // This instance's peer number (0 until the first renewal claims one); any thread.
  uint32_t peer() const { return peer_.load(std::memory_order_relaxed); }
  // Forwards CancelRequests to the instance owning the session (its own thread).
  CancelForwarder& cancels() { return cancels_; }

 private:
  struct Item {
    uint32_t tenant_index;
    std::string tenant;
    char kind;
    double limit, used, want;
  };
  void run();
  void renew_once();
  std::vector<Item> collect();
  void apply(const std::vector<Item>& items, const std::vector<double>& shares);
  uint32_t waiting(uint32_t tenant_index) const;
  std::string member_info();
  void apply_peers(const RedisValue& peer, const RedisValue& ids, const RedisValue& infos);

  const config::FleetConfig cfg_;
  tenant::TenantRegistry& tenants_;
  tenant::FleetCaps& caps_;
  const std::string info_;
  RedisConn redis_;
  std::function<void(tenant::TenantState*)> active_grew_;
  std::function<void()> renewed_;
  std::function<std::vector<ExternalLimit>()> collect_external_;
  std::function<void(const std::string&, double)> apply_external_;

  std::atomic<bool> degraded_{false};
  std::atomic<uint32_t> live_{1};
  std::atomic<uint64_t> renewals_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint32_t> peer_{0};
  CancelForwarder cancels_;
  std::string cancel_address_;  // resolved once (agent thread; written under mu_); "" until then
  bool cancel_address_failed_ = false;
  bool shared_address_warned_ = false;

  mutable std::mutex mu_;  // guards the members below
  std::condition_variable cv_;
  bool stop_ = false;
  bool kicked_ = false;
  std::unordered_map<uint32_t, uint32_t> waiting_;
  std::vector<std::string> instances_;
  std::vector<ShareView> shares_;
  double last_renewal_ms_ = 0;
  std::thread thread_;
};

}  // namespace helios::fleet
