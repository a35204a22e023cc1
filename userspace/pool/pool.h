// A pool: the backends of one (database, user, tier group), with its idle list, its waiters
// (weighted fair queue across tenants, FIFO within a tenant) and its limits. Shared by all
// workers; every method is thread-safe (one mutex, held for O(1) work, never across I/O).
//
// Backends are opened by the Connector threads on request; a released backend goes straight to
// the next waiter (on whatever worker it waits) or back to the idle list.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "common/atomic_histogram.h"
#include "common/clock.h"
#include "config/config.h"
#include "pool/backend.h"
#include "pool/pg_conn.h"
#include "tenant/fair_queue.h"

namespace helios::pool {

class BackendTable;
class Connector;

struct PoolKey {
  std::string database;
  std::string user;
  std::string
      group;  // "" = default pool; "tier:<name>" shared tier; "tier:<name>:<tenant>" dedicated
  uint16_t host = 0;  // index in [backend] hosts: each host has its own pools
  bool operator==(const PoolKey&) const = default;
  std::string to_string() const;  // "db/user" or "db/user/group", then "@host" for host > 0
};

struct PoolSettings {
  int64_t min_connections = 0;
  int64_t max_connections = 20;
  Nanos idle_timeout = 600 * kNanosPerSec;
  Nanos max_lifetime = 3600 * kNanosPerSec;
  double lifetime_jitter = 0.2;
  Nanos connection_timeout = 5 * kNanosPerSec;
  Nanos server_check_delay = 0;  // idle longer than this: poll() for a death notice first
  config::PoolMode mode = config::PoolMode::kTransaction;
  std::string reset_query = "DISCARD ALL";
  bool operator==(const PoolSettings&) const = default;
};

// A client waiting for a backend, as the pool sees it. Embedded in the client.
struct Waiter {
  tenant::FairQueue::Node node;  // first member: the queue hands back Node*
  uint16_t worker = 0;
  uint32_t slot = 0;
  uint32_t gen = 0;
  uint32_t weight = 1;
  Nanos since = 0;
};

// Why a waiter was failed instead of granted.
enum class WaitFailure : uint32_t { kConnectFailed = 1, kPoolClosed = 2 };

// Delivers pool decisions to the worker that owns a waiting client. Each thread that releases
// backends or finishes connects has its own Messenger.
class Messenger {
 public:
  virtual ~Messenger() = default;
  virtual void grant(const Waiter& w, Backend* b) = 0;
  virtual void fail(const Waiter& w, WaitFailure why) = 0;
  // Wakes `worker` to read its mailbox.
  virtual void mail(uint16_t worker) = 0;
};

struct PoolCounters {
  explicit PoolCounters(const std::vector<double>& buckets)
      : acquire_latency(buckets), lease_duration(buckets) {}
  AtomicHistogram acquire_latency;  // time a client waited for a backend
  AtomicHistogram lease_duration;   // time a backend stayed leased
  std::atomic<uint64_t> acquires{0};
  std::atomic<uint64_t> releases{0};
  std::atomic<uint64_t> lease_ns_total{0};
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> connect_failures{0};
  std::atomic<uint64_t> closed_lifetime{0};
  std::atomic<uint64_t> closed_idle{0};
  std::atomic<uint64_t> closed_over_max{0};  // idle ones past a lowered max (reload, fleet slice)
  std::atomic<uint64_t> closed_broken{0};
  std::atomic<uint64_t> dead_idle_detected{0};
  std::atomic<uint64_t> refused_transitions{0};  // Backend::move_to refusals (a bug)
};

struct PoolSnapshot {
  std::string name;
  config::PoolMode mode;
  int64_t total = 0, idle = 0, active = 0, connecting = 0, waiting = 0, max = 0, min = 0;
  uint64_t acquires = 0, releases = 0;
  double avg_lease_ms = 0;
  std::string last_connect_error;
};

class Pool {
 public:
  Pool(PoolKey key, PoolSettings settings, BackendTable& table, Connector& connector,
       const std::vector<double>& histogram_buckets);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  const PoolKey& key() const { return key_; }
  const std::string& name() const { return name_; }

  // Worker side. Returns an idle backend (now kLeased to w) or nullptr: w was queued and, if the
  // pool may grow, a connect was requested. Never blocks.
  Backend* acquire(Waiter* w, Nanos now);
  // Removes w from the queue. False if it was no longer queued (a grant is on its way).
  bool cancel_wait(Waiter* w);

  // Returns a backend whose lease (or cleanup) is over and that is clean (tx idle, nothing in
  // flight): to the next waiter, else to the idle list; expired or broken ones are closed.
  void release(Backend* b, Messenger& m, Nanos now);
  // Closes a backend that cannot be reused (broken, or its client vanished mid-query).
  void discard(Backend* b, Messenger& m);

  // Connector side.
  void on_connected(ServerSession session, Messenger& m, Nanos now);
  void on_connect_failed(const Error& e, Messenger& m);

  // Control thread: close idle backends past idle_timeout, lifetime or found dead; open more to
  // reach min_connections. Called about once per second.
  void upkeep(Messenger& m, Nanos now);

  // Hot reload or a new fleet slice: new limits apply from now on. Below the backends open, idle
  // ones are closed at once (coldest first) and leased ones as their leases end, so the
  // backends given up can be opened elsewhere (another instance's pool, docs/fleet.md).
  void apply_settings(const PoolSettings& s);
  PoolSettings settings() const;
  config::PoolMode mode() const { return mode_.load(std::memory_order_relaxed); }
  std::string reset_query() const;

  // What the first backend reported at login (server_version, encodings...), for clients'
  // ParameterStatus. Empty until one backend has connected.
  ParamList server_params() const;
  // Same, without copying or locking: valid once has_server_params() is true (set only once).
  const ParamList& server_params_ref() const { return server_params_; }
  bool has_server_params() const { return has_params_.load(std::memory_order_acquire); }
  // Takes the parameters another host's pool learned, if this pool has none yet.
  void adopt_server_params(const ParamList& params);
  std::string last_connect_error() const;
  // The SQLSTATE PostgreSQL gave for the last failed login ("" if it never answered).
  std::string last_connect_sqlstate() const;

  // Credentials used to open backends; set by the auth flow (e.g. a SCRAM ClientKey).
  void set_login_secret(const LoginSecret& s);
  LoginSecret login_secret() const;
  bool has_login_secret() const;

  PoolSnapshot snapshot() const;
  PoolCounters& counters() { return counters_; }
  // Number of clients waiting, without the lock (approximate, for metrics).
  int64_t waiting_relaxed() const { return waiting_.load(std::memory_order_relaxed); }
  // Backends leased or in cleanup plus clients waiting, without the lock: the outstanding work
  // the read/write split balances replicas by.
  int64_t busy_relaxed() const { return busy_.load(std::memory_order_relaxed); }

  // The same pool on another [backend] host, cached for PoolManager::on_host (null until made).
  static constexpr size_t kMaxHosts = 16;
  Pool* sibling(uint16_t host) const {
    return host < kMaxHosts ? siblings_[host].load(std::memory_order_acquire) : nullptr;
  }
  void set_sibling(uint16_t host, Pool* p) {
    if (host < kMaxHosts) siblings_[host].store(p, std::memory_order_release);
  }
  // Backends whose process id is pid (admin/tests); -1 if none.
  bool drained() const;
  void close_all_idle(Messenger& m);

 private:
  void push_idle(Backend* b, Nanos now);
  Backend* pop_idle(Nanos now);
  void close_idle_over_max_locked();
  void close_locked(Backend* b);
  void request_connects_locked();
  bool is_dead(Backend* b) const;
  Nanos lifetime_for_new() const;

  PoolKey key_;
  std::string name_;
  BackendTable& table_;
  Connector& connector_;

  mutable std::mutex mu_;
  PoolSettings settings_;
  std::string reset_query_;
  std::atomic<config::PoolMode> mode_;
  Backend* idle_head_ = nullptr;  // LIFO: hot backends stay hot, cold ones age out
  int64_t idle_ = 0;
  int64_t total_ = 0;       // open backends (idle + leased + cleanup)
  int64_t connecting_ = 0;  // connects requested and not finished
  tenant::FairQueue waiters_;
  std::atomic<int64_t> waiting_{0};
  std::atomic<int64_t> busy_{0};
  std::array<std::atomic<Pool*>, kMaxHosts>
      siblings_{};  // total_ - idle_ + waiters, refreshed under mu_
  void refresh_busy_locked() {
    busy_.store(total_ - idle_ + int64_t(waiters_.size()), std::memory_order_relaxed);
  }
  ParamList server_params_;
  std::atomic<bool> has_params_{false};
  std::string last_error_;
  std::string last_error_sqlstate_;
  LoginSecret secret_;
  bool has_secret_ = false;
  PoolCounters counters_;
  mutable uint64_t rng_;
};

}  // namespace helios::pool
