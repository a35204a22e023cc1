// The PostgreSQL hosts behind the proxy and what the health checker last found about each: its
// role (primary or replica), whether it is banned, its replication lag and replay position.
// Written by the health checker thread, read lock-free by workers when they route a lease.
//
// The primary: the one host that says it is not in recovery. When a second host also claims
// the role (a former primary back as a stale writer), the host already chosen keeps it and the
// other is marked kConflict and used for nothing; when no primary was chosen yet and two claim
// it at once, neither is used (no primary is known) until only one claims it. The proxy never
// guesses between two writers.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "pool/pg_conn.h"

namespace helios::pool {

enum class HostRole : uint8_t { kUnknown, kPrimary, kReplica, kConflict };
const char* to_string(HostRole r);

// One health check's outcome for one host.
struct HostCheck {
  bool ok = false;
  std::string error;  // when !ok
  bool in_recovery = false;
  uint64_t wal_lsn = 0;  // primary: its WAL insert position; replica: its replay position
  bool replay_paused = false;
  double replay_delay_s = 0;  // replica: age of the last replayed commit while WAL is pending
};

struct HostStatus {
  std::string address;  // "host:port"
  HostRole role = HostRole::kUnknown;
  bool banned = false;
  bool lagging = false;  // a replica over max_replica_lag(_bytes) or paused: no reads
  double lag_seconds = 0;
  int64_t lag_bytes = 0;
  uint64_t wal_lsn = 0;
  uint64_t routed = 0;  // leases routed here
  uint64_t checks_failed = 0;
  std::string last_error;
};

struct HostLimits {
  Nanos ban_time = 10 * kNanosPerSec;
  Nanos max_lag = 5 * kNanosPerSec;
  int64_t max_lag_bytes = 16 << 20;
};

class HostTable {
 public:
  HostTable(std::vector<ServerAddress> hosts, HostLimits limits);

  size_t size() const { return hosts_.size(); }
  const ServerAddress& address(size_t i) const { return hosts_[i]; }

  // ---- worker side (lock-free)
  // The host that holds the primary role, or -1 while none is known.
  int primary() const { return primary_.load(std::memory_order_acquire); }
  // A replica that may serve reads now: in recovery, not banned, not lagging.
  bool readable_replica(size_t i, Nanos now) const;
  // Whether host i has replayed WAL up to `lsn` (read-your-writes).
  bool replayed(size_t i, uint64_t lsn) const;
  // The primary's WAL insert position measured by the earliest recorded check round that
  // started after `t` (so it covers every commit acknowledged before t); 0 if none yet.
  uint64_t primary_lsn_after(Nanos t) const;
  void count_routed(size_t i) { state_[i].routed.fetch_add(1, std::memory_order_relaxed); }
  // Host i is not the primary any more, found between checks: a new backend of it reported
  // in_hot_standby=on, or it refuses connections. It stays without a role until its next check
  // (which elects it again if it still claims the role and no other host took it).
  void drop_primary(size_t i, std::string_view why);

  // ---- health checker side
  bool banned(size_t i, Nanos now) const;
  // Records one check of every host (same round: replica lag is measured against the primary's
  // position of that round) and elects the primary. Returns the hosts newly banned.
  std::vector<size_t> record_round(const std::vector<HostCheck>& checks,
                                   const std::vector<bool>& checked, Nanos started, Nanos now);

  std::vector<HostStatus> snapshot(Nanos now) const;

 private:
  struct State {
    std::atomic<HostRole> role{HostRole::kUnknown};
    std::atomic<Nanos> banned_until{0};
    std::atomic<bool> lagging{false};
    std::atomic<uint64_t> wal_lsn{0};
    std::atomic<int64_t> lag_bytes{0};
    std::atomic<double> lag_seconds{0};
    std::atomic<uint64_t> routed{0};
    std::atomic<uint64_t> checks_failed{0};
  };
  std::vector<ServerAddress> hosts_;
  HostLimits limits_;
  std::unique_ptr<State[]> state_;
  std::atomic<int> primary_{-1};
  size_t claimants_logged_ = 0;  // checker thread only
  mutable std::mutex mu_;        // last_error_ and rounds_ (checker writes, snapshot/workers read)
  std::vector<std::string> last_error_;
  struct Round {
    Nanos started = 0;
    uint64_t primary_lsn = 0;
  };
  static constexpr size_t kRounds = 64;  // ring of the last rounds that measured a primary
  std::array<Round, kRounds> rounds_{};
  size_t rounds_next_ = 0;
};

// "0/16B3740" -> 0x16B3740; 0 for anything else.
uint64_t parse_lsn(std::string_view text);

}  // namespace helios::pool
