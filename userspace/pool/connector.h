// Opens backends off the data path. A few threads take connect requests from pools, log in with
// the pool's secret (blocking, bounded by connection_timeout) and hand the result back to the
// pool, which grants it to a waiter or parks it idle. Also runs other short control-plane jobs
// (auth_query lookups, cancel requests) so no worker thread ever blocks on PostgreSQL.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "pool/pg_conn.h"
#include "pool/pool.h"

namespace helios::pool {

struct ConnectorSettings {
  ServerAddress address;
  std::vector<ServerAddress> hosts;  // [backend] hosts; a pool's key().host indexes it
  ParamList extra_params;  // sent in every backend's StartupMessage (e.g. statement_timeout)
  Nanos connection_timeout = 5 * kNanosPerSec;
  Nanos tcp_user_timeout = 0;  // TCP_USER_TIMEOUT on each backend; 0 = the kernel's default
  ServerTls tls;
};

class Connector {
 public:
  using MessengerFactory = std::function<std::unique_ptr<Messenger>()>;
  using Job = std::function<void(Messenger&)>;

  Connector(ConnectorSettings settings, MessengerFactory make_messenger, int threads);
  ~Connector();  // stops and joins
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // Asks for one new backend for `pool` (called with the pool's lock held: only enqueues).
  void request(Pool* pool);
  // Runs any control-plane job on a connector thread.
  void run(Job job);
  void apply_settings(ConnectorSettings s);
  ConnectorSettings settings() const;
  void stop();

 private:
  void loop();
  void connect_one(Pool* pool, Messenger& m);

  MessengerFactory make_messenger_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  ConnectorSettings settings_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace helios::pool
