// Runtime state of one tenant: its limits and the lock-free counters the admission checks and
// statistics use. One per tenant seen, owned by TenantRegistry, address stable for the process
// lifetime, shared by every worker thread.
//
// Hot-path methods are O(1), lock-free and allocation-free (atomics with CAS where a limit must
// hold exactly). Limits are individual atomics updated in place on reload: a check racing a
// reload sees either the old or the new value of each limit.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

#include "common/clock.h"
#include "tenant/tenant_limits.h"
#include "tenant/token_bucket.h"

namespace helios::tenant {

// Tenant names are kept like PostgreSQL identifiers: at most 63 bytes (NAMEDATALEN - 1).
constexpr size_t kMaxTenantName = 63;
// Longer names are cut to 63 bytes, backing off so a UTF-8 sequence is never split. Two names
// that agree on their clipped prefix are the same tenant.
std::string_view clip_tenant_name(std::string_view name);

enum class Rejection : uint8_t {
  kConnections = 0,      // over max_connections (counted by try_admit_connection)
  kQps,                  // waited qps_max_wait for a token and gave up
  kAcquireTimeout,       // waited acquire_timeout for a backend
  kTransactionDuration,  // cancelled for exceeding max_transaction_duration
  kMaxActive,            // waited acquire_timeout at its max_active gate (keep it last)
  kCount
};
const char* rejection_name(Rejection r);  // "connections", "qps", ...

// A plain snapshot for the admin API, metrics and tests.
struct TenantStats {
  uint32_t index = 0;
  std::string_view name;
  int16_t rule = -1;
  TenantLimits limits;
  uint32_t client_connections = 0;
  uint32_t active_leases = 0;
  uint32_t queued = 0;
  uint64_t queries_total = 0;
  uint64_t transactions_total = 0;
  std::array<uint64_t, size_t(Rejection::kCount)> rejections{};
  double avg_query_ms = 0;
  double current_qps = 0;
};

class TenantState {
 public:
  TenantState(uint32_t index, std::string_view name, const TenantLimits& limits, Nanos now);
  TenantState(const TenantState&) = delete;
  TenantState& operator=(const TenantState&) = delete;

  uint32_t index() const { return index_; }
  std::string_view name() const { return {name_, name_len_}; }

  // Limits: snapshot, and in-place update on reload (keeps the token bucket's fill).
  TenantLimits limits() const;
  void set_limits(const TenantLimits& limits, Nanos now);
  // Index of the config rule that gave the limits, -1 for the default.
  int16_t rule() const { return rule_.load(std::memory_order_relaxed); }
  void set_rule(int16_t rule) { rule_.store(rule, std::memory_order_relaxed); }
  uint32_t weight() const { return weight_.load(std::memory_order_relaxed); }
  int8_t pool_mode_override() const { return pool_mode_.load(std::memory_order_relaxed); }
  int8_t data_path_override() const { return data_path_.load(std::memory_order_relaxed); }
  int16_t tier() const { return tier_.load(std::memory_order_relaxed); }
  Nanos qps_max_wait() const { return qps_max_wait_.load(std::memory_order_relaxed); }
  Nanos max_transaction_duration() const { return max_txn_.load(std::memory_order_relaxed); }
  uint32_t max_connections() const { return max_connections_.load(std::memory_order_relaxed); }
  uint32_t max_active() const { return max_active_.load(std::memory_order_relaxed); }

  // A fleet share ([fleet], tenant/fleet_caps.h) is passed to the checks below as `cap`: the
  // local limit instead of max_connections / max_active (which stay the fleet-wide values).
  static constexpr uint32_t kNoCap = UINT32_MAX;
  // The rate this instance's token bucket runs at: a share of max_qps (burst scaled alike), or
  // max_qps again with share < 0.
  void set_qps_share(double share, Nanos now);
  double qps_rate() const { return bucket_.rate(); }

  // Client connections: exact against max_connections (or the fleet share `cap`) across
  // threads. A refusal is counted as a Rejection::kConnections unless count_refusal is false (a
  // login that may still wait for a fleet share).
  bool try_admit_connection(bool count_refusal = true, uint32_t cap = kNoCap);
  void release_connection() { client_connections_.fetch_sub(1, std::memory_order_relaxed); }

  // Backend leases: exact against max_active. A refusal is not a rejection (the caller queues).
  bool try_begin_active(uint32_t cap = kNoCap);
  void end_active() { active_leases_.fetch_sub(1, std::memory_order_relaxed); }

  // QPS: take a token, or learn how long until one is available.
  bool try_take_qps(Nanos now) { return bucket_.try_take(now); }
  Nanos qps_wait(Nanos now) const { return bucket_.wait_time(now); }

  // Waiters for a backend (for stats; the fair queue itself lives in the pool).
  void enter_queue() { queued_.fetch_add(1, std::memory_order_relaxed); }
  void leave_queue() { queued_.fetch_sub(1, std::memory_order_relaxed); }

  // Statistics.
  void record_query(Nanos now, Nanos duration);
  void record_transaction() { transactions_total_.fetch_add(1, std::memory_order_relaxed); }
  void record_rejection(Rejection r) {
    if (r == Rejection::kMaxActive)
      max_active_timeouts_.fetch_add(1, std::memory_order_relaxed);
    else
      rejections_[size_t(r)].fetch_add(1, std::memory_order_relaxed);
  }
  // Queries per second over the last second: the current 1 s bucket plus the previous one
  // weighted by how much of it still lies inside the window.
  double current_qps(Nanos now) const;
  uint32_t client_connections() const {
    return client_connections_.load(std::memory_order_relaxed);
  }
  uint32_t active_leases() const { return active_leases_.load(std::memory_order_relaxed); }
  uint32_t queued() const { return queued_.load(std::memory_order_relaxed); }
  uint64_t rejections(Rejection r) const {
    if (r == Rejection::kMaxActive) return max_active_timeouts_.load(std::memory_order_relaxed);
    return rejections_[size_t(r)].load(std::memory_order_relaxed);
  }
  TenantStats stats(Nanos now) const;

 private:
  TokenBucket bucket_;
  std::atomic<double> max_qps_{0};
  std::atomic<double> qps_burst_{0};
  std::atomic<uint64_t> queries_total_{0};
  std::atomic<uint64_t> transactions_total_{0};
  std::atomic<uint64_t> query_ns_total_{0};
  // All but kMaxActive, which is max_active_timeouts_: at most one per waiter per
  // acquire_timeout, 32 bits do, and they fit the padding (the state stays within 232 bytes).
  std::array<std::atomic<uint64_t>, size_t(Rejection::kMaxActive)> rejections_{};
  // QPS window buckets, each packed as (second << 32) | count.
  std::atomic<uint64_t> window_cur_{0};
  std::atomic<uint64_t> window_prev_{0};
  std::atomic<Nanos> qps_max_wait_{0};
  std::atomic<Nanos> max_txn_{0};
  std::atomic<uint32_t> client_connections_{0};
  std::atomic<uint32_t> active_leases_{0};
  std::atomic<uint32_t> queued_{0};
  std::atomic<uint32_t> max_connections_{0};
  std::atomic<uint32_t> max_active_{0};
  std::atomic<uint32_t> weight_{1};
  std::atomic<uint32_t> max_active_timeouts_{0};
  const uint32_t index_;
  std::atomic<int16_t> rule_{-1};
  std::atomic<int16_t> tier_{-1};
  std::atomic<int8_t> pool_mode_{-1};
  std::atomic<int8_t> data_path_{-1};
  uint8_t name_len_ = 0;
  char name_[kMaxTenantName + 1] = {};
};

static_assert(sizeof(TenantState) <= 256, "per-tenant state must stay within 256 bytes");
static_assert(std::atomic<double>::is_always_lock_free);

}  // namespace helios::tenant
