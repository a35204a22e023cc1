// Operations endpoints of a running proxy: the admin HTTP API on [proxy] admin_listen_address
// and, when [metrics] enabled, the Prometheus endpoint on prometheus_address:prometheus_port.
// Both read the proxy's state at request time (take_snapshot); nothing is pushed from the data
// path except the MetricsCounters it bumps.
//
// Online restart: while a predecessor still holds the admin or metrics port (it is draining),
// binding is retried in the background every 250 ms; the proxy serves clients meanwhile.
//
// Threads: one listener thread per endpoint plus a thread per connection being served
// (HttpEndpoint), and one upkeep thread (bind retries, quota-rejection samples for
// quota_rejections_1h).
//
// The mutating admin endpoints need a token: [admin] token, else the token generated at start
// in generated_token_path() (control/admin_token.h), whose path is logged.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "common/result.h"
#include "ops/admin_api.h"
#include "ops/metrics_endpoint.h"
#include "ops/metrics_window.h"
#include "proxy/metrics_counters.h"

namespace helios::proxy {
class Proxy;
}

namespace helios::ops {

class OpsServer final : public AdminTarget {
 public:
  // Call after Server::start(). `counters`: the MetricsCounters the data path updates; nullptr
  // = the OpsServer keeps its own (then only what reads server state is reported).
  // Fails only when the admin address cannot be used at all (not merely busy).
  static Result<std::unique_ptr<OpsServer>> start(proxy::Proxy& server,
                                                  proxy::MetricsCounters* counters = nullptr);
  ~OpsServer() override;
  OpsServer(const OpsServer&) = delete;
  OpsServer& operator=(const OpsServer&) = delete;

  // Stops both endpoints and the upkeep thread (idempotent).
  void stop();

  proxy::MetricsCounters& counters() { return *counters_; }
  uint16_t admin_port() const { return admin_bound_.load() ? admin_.port() : 0; }
  bool metrics_serving() const { return metrics_bound_.load(); }

  // AdminTarget
  ProxySnapshot snapshot() override;
  bool ready() override;
  bool draining() override;
  uint64_t quota_rejections_1h(const ProxySnapshot& s) override;
  ReloadSample reload() override;
  void drain() override;
  std::string admin_token() override;
  std::string mutation_token() override;

 private:
  OpsServer(proxy::Proxy& server, proxy::MetricsCounters* counters);
  Status try_bind_admin();
  Status try_bind_metrics();
  Status prepare_generated_token();
  void upkeep_loop();
  uint64_t total_rejections() const;

  proxy::Proxy& server_;
  std::unique_ptr<proxy::MetricsCounters> own_counters_;
  proxy::MetricsCounters* counters_;
  const Nanos started_;

  AdminApi admin_;
  std::thread admin_thread_;
  std::atomic<bool> admin_bound_{false};

  MetricsEndpoint metrics_;
  std::thread metrics_thread_;
  std::atomic<bool> metrics_bound_{false};
  bool metrics_enabled_ = false;
  std::string metrics_address_;

  std::mutex token_mu_;
  std::string token_path_;       // where the generated token lives
  std::string generated_token_;  // "" until needed (no [admin] token configured)

  std::mutex window_mu_;
  CounterWindow rejections_window_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread upkeep_;
};

}  // namespace helios::ops
