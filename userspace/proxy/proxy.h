// The proxy process: shared context, worker threads, connector threads, and the control loop
// (signals through signalfd, pool upkeep once a second, reload, drain).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bpf/sockops_bypass.h"
#include "bpf/vip_lookup.h"
#include "bpf/xdp_guard.h"
#include "common/result.h"
#include "config/config.h"
#include "datapath/kernel_accounting.h"
#include "proxy/bpf_specs.h"
#include "proxy/context.h"
#include "proxy/heap_trim.h"
#include "proxy/load_governor.h"
#include "proxy/worker.h"

namespace helios::proxy {

class ThreadMessenger;

struct ReloadOutcome {
  bool ok = false;
  std::string error;  // why the new config was refused (the old one stays)
  Nanos took = 0;     // from reading the file to every worker running with it
};

class Proxy {
 public:
  Proxy(config::Config cfg, std::string config_path);
  ~Proxy();

  Status start();
  // Runs the control loop on the calling thread until the proxy has drained or stopped.
  int run();

  // Thread-safe entry points for the control plane (admin API, signals).
  ReloadOutcome reload();
  void drain();
  std::shared_ptr<const config::Config> config() const;
  const std::string& config_path() const { return config_path_; }
  SharedContext& context() { return ctx_; }
  const std::vector<std::unique_ptr<Worker>>& workers() const { return workers_; }
  // Serving clients; with several [backend] hosts, also a primary is known.
  bool ready() const {
    return ready_.load(std::memory_order_acquire) && (!ctx_.hosts || ctx_.hosts->primary() >= 0);
  }
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  ReloadOutcome last_reload() const;

 private:
  void apply(std::shared_ptr<const config::Config> cfg);
  // Kernel features from [edge], [vip] and [proxy] same_host_bypass: each attached if the
  // kernel allows, else one log line and the proxy runs without it.
  void attach_kernel_features(const config::Config& cfg, int listener_fd);
  struct PreparedReload {
    std::shared_ptr<const config::Config> cfg;
    std::shared_ptr<io::TlsContext> client_tls;
  };
  Result<PreparedReload> prepare_reload() const;
  static Result<std::shared_ptr<io::TlsContext>> client_tls_for(const config::Config& cfg);
  Status load_client_tls(const config::Config& cfg);
  // [backend] hosts: the host table and its health checker (proxy/host_health.cpp).
  Status start_health_checker(const config::Config& cfg);
  void upkeep(Nanos now);
  // Workers that follow the load (proxy_load.cpp): the governor, fed each worker thread's CPU.
  void start_following_load(const config::Config& cfg);
  void follow_load(Nanos now);
  void reconfigure_load(const config::Config& cfg);
  void publish_active_workers(const config::Config& cfg);
  // [fleet] (proxy_fleet.cpp): the agent, wired to the tenant registry, gates and workers.
  Status start_fleet(const config::Config& cfg);
  void stop_fleet();

  std::string config_path_;
  mutable std::mutex cfg_mu_;
  std::shared_ptr<const config::Config> cfg_;
  ReloadOutcome last_reload_;

  // Lease splicing (data_path kernel/auto): declared before ctx_ so it outlives the backends
  // and clients that joined it. Its per-tenant counters go into the byte metrics at upkeep.
  std::unique_ptr<bpf::SpliceEngine> splice_;
  std::unique_ptr<datapath::KernelTenantCounters> splice_counters_;
  void load_splice_engine(const config::Config& cfg, int workers);
  SharedContext ctx_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  std::unique_ptr<ThreadMessenger> control_messenger_;
  std::unique_ptr<fleet::FleetAgent> fleet_;
  // Made and used on the fleet agent's thread only (its ring is single-issuer).
  std::unique_ptr<pool::Messenger> fleet_messenger_;
  pool::Messenger& fleet_messenger();
  std::optional<bpf::EdgeGuard> edge_;
  std::optional<bpf::VipSteering> vip_;
  std::optional<bpf::SameHostBypass> bypass_;
  std::mutex control_mu_;  // serializes reload/drain from signal and admin threads
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  std::atomic<bool> drain_requested_{false};
  std::atomic<bool> reload_requested_{false};
  HeapTrim heap_trim_;  // control thread only (upkeep)
  // Control thread only: workers that follow the load.
  LoadGovernor governor_{{}};
  std::vector<clockid_t> worker_clocks_;  // each worker thread's CPU clock
  std::vector<Nanos> worker_cpu_;         // its CPU time at the last check
  Nanos last_load_check_ = 0;
};

}  // namespace helios::proxy
