// The health checker: one thread that, every health_check_interval, asks each host (primary
// first) whether it is in recovery and how far it has replayed, over one long-lived connection
// per host as the [backend] user. Results go to the HostTable. A host whose check fails (no
// connection, no answer within the interval) is banned for ban_time: on_ban closes its idle
// backends, and it is checked again when the ban ends. Never runs on a worker.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pool/host_table.h"
#include "pool/pg_conn.h"

namespace helios::pool {

struct HealthCheckSettings {
  std::string user;
  std::string database;
  LoginSecret secret;
  Nanos interval = 1 * kNanosPerSec;
  Nanos connect_timeout = 5 * kNanosPerSec;
  ServerTls tls;
};

class HealthChecker {
 public:
  using OnBan = std::function<void(size_t host)>;
  HealthChecker(HostTable& table, HealthCheckSettings settings, OnBan on_ban);
  ~HealthChecker();  // stops and joins
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Runs one round now (tests, startup); the thread keeps its own schedule.
  void check_now();
  void stop();

 private:
  void loop();
  void round();
  HostCheck check_one(size_t i, Nanos deadline);

  HostTable& table_;
  HealthCheckSettings settings_;
  OnBan on_ban_;
  std::vector<std::optional<ServerSession>> sessions_;  // checker thread only
  std::mutex round_mu_;                                 // one round at a time
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace helios::pool
