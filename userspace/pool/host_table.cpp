#include "pool/host_table.h"

#include <charconv>

#include "common/log.h"

namespace helios::pool {

const char* to_string(HostRole r) {
  switch (r) {
    case HostRole::kUnknown:
      return "unknown";
    case HostRole::kPrimary:
      return "primary";
    case HostRole::kReplica:
      return "replica";
    case HostRole::kConflict:
      return "conflict";
  }
  return "unknown";
}

uint64_t parse_lsn(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return 0;
  uint64_t hi = 0, lo = 0;
  auto a = std::from_chars(text.data(), text.data() + slash, hi, 16);
  auto b = std::from_chars(text.data() + slash + 1, text.data() + text.size(), lo, 16);
  if (a.ec != std::errc() || b.ec != std::errc() || a.ptr != text.data() + slash ||
      b.ptr != text.data() + text.size() || hi > 0xffffffffu || lo > 0xffffffffu)
    return 0;
  return (hi << 32) | lo;
}

HostTable::HostTable(std::vector<ServerAddress> hosts, HostLimits limits)
    : hosts_(std::move(hosts)),
      limits_(limits),
      state_(std::make_unique<State[]>(hosts_.size())),
      last_error_(hosts_.size()) {}

bool HostTable::banned(size_t i, Nanos now) const {
  return now < state_[i].banned_until.load(std::memory_order_relaxed);
}

bool HostTable::readable_replica(size_t i, Nanos now) const {
  const State& s = state_[i];
  return s.role.load(std::memory_order_relaxed) == HostRole::kReplica && !banned(i, now) &&
         !s.lagging.load(std::memory_order_relaxed);
}

bool HostTable::replayed(size_t i, uint64_t lsn) const {
  return state_[i].wal_lsn.load(std::memory_order_acquire) >= lsn;
}

void HostTable::drop_primary(size_t i, std::string_view why) {
  int expected = int(i);
  if (primary_.compare_exchange_strong(expected, -1, std::memory_order_acq_rel)) {
    state_[i].role.store(HostRole::kUnknown, std::memory_order_relaxed);
    log::warn("host {}:{} {}: it is no longer taken for the primary", hosts_[i].host,
              hosts_[i].port, why);
  }
}

uint64_t HostTable::primary_lsn_after(Nanos t) const {
  std::lock_guard lock(mu_);
  uint64_t best = 0;
  Nanos best_start = 0;
  for (const Round& r : rounds_)
    if (r.started > t && r.primary_lsn && (best_start == 0 || r.started < best_start)) {
      best = r.primary_lsn;
      best_start = r.started;
    }
  return best;
}

std::vector<size_t> HostTable::record_round(const std::vector<HostCheck>& checks,
                                            const std::vector<bool>& checked, Nanos started,
                                            Nanos now) {
  std::vector<size_t> newly_banned;
  std::vector<size_t> claimants;
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (!checked[i]) continue;
    State& s = state_[i];
    const HostCheck& c = checks[i];
    if (!c.ok) {
      s.checks_failed.fetch_add(1, std::memory_order_relaxed);
      if (!banned(i, now)) newly_banned.push_back(i);
      s.banned_until.store(now + limits_.ban_time, std::memory_order_relaxed);
      s.role.store(HostRole::kUnknown, std::memory_order_relaxed);
      std::lock_guard lock(mu_);
      last_error_[i] = c.error;
      continue;
    }
    s.wal_lsn.store(c.wal_lsn, std::memory_order_release);
    if (c.in_recovery) {
      s.role.store(HostRole::kReplica, std::memory_order_relaxed);
    } else {
      claimants.push_back(i);
    }
  }
  // Elect the primary: the current one keeps the role while it still claims it.
  const int cur = primary_.load(std::memory_order_acquire);
  int chosen = -1;
  for (size_t i : claimants)
    if (int(i) == cur) chosen = cur;
  if (chosen < 0 && claimants.size() == 1) chosen = int(claimants.front());
  for (size_t i : claimants)
    state_[i].role.store(int(i) == chosen ? HostRole::kPrimary : HostRole::kConflict,
                         std::memory_order_relaxed);
  if (chosen != cur) {
    if (chosen >= 0)
      log::warn("host {}:{} is the primary now", hosts_[size_t(chosen)].host,
                hosts_[size_t(chosen)].port);
    else
      log::warn("no primary is known: {} host(s) claim the role", claimants.size());
  }
  if (claimants.size() > 1 && claimants.size() != claimants_logged_)
    log::error(
        "{} hosts are out of recovery (two writers); only the primary chosen before is "
        "used, the others get no traffic",
        claimants.size());
  claimants_logged_ = claimants.size();
  primary_.store(chosen, std::memory_order_release);
  // Replica lag against this round's primary position.
  const uint64_t p_lsn =
      chosen >= 0 ? state_[size_t(chosen)].wal_lsn.load(std::memory_order_relaxed) : 0;
  if (chosen >= 0 && checked[size_t(chosen)] && p_lsn) {
    std::lock_guard lock(mu_);
    rounds_[rounds_next_] = Round{started, p_lsn};
    rounds_next_ = (rounds_next_ + 1) % kRounds;
  }
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (!checked[i] || !checks[i].ok || !checks[i].in_recovery) continue;
    State& s = state_[i];
    const HostCheck& c = checks[i];
    const int64_t bytes = p_lsn > c.wal_lsn ? int64_t(p_lsn - c.wal_lsn) : 0;
    s.lag_bytes.store(bytes, std::memory_order_relaxed);
    s.lag_seconds.store(c.replay_delay_s, std::memory_order_relaxed);
    const bool lagging = c.replay_paused || bytes > limits_.max_lag_bytes ||
                         c.replay_delay_s * 1e9 > double(limits_.max_lag);
    if (lagging != s.lagging.load(std::memory_order_relaxed))
      log::info("replica {}:{} {} (lag {:.3f}s, {} bytes{})", hosts_[i].host, hosts_[i].port,
                lagging ? "lags: no reads go there" : "caught up: reads go there again",
                c.replay_delay_s, bytes, c.replay_paused ? ", replay paused" : "");
    s.lagging.store(lagging, std::memory_order_relaxed);
  }
  return newly_banned;
}

std::vector<HostStatus> HostTable::snapshot(Nanos now) const {
  std::vector<HostStatus> out;
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < hosts_.size(); ++i) {
    const State& s = state_[i];
    HostStatus h;
    h.address = hosts_[i].host + ":" + std::to_string(hosts_[i].port);
    h.role = s.role.load(std::memory_order_relaxed);
    h.banned = banned(i, now);
    h.lagging = s.lagging.load(std::memory_order_relaxed);
    h.lag_seconds = s.lag_seconds.load(std::memory_order_relaxed);
    h.lag_bytes = s.lag_bytes.load(std::memory_order_relaxed);
    h.wal_lsn = s.wal_lsn.load(std::memory_order_relaxed);
    h.routed = s.routed.load(std::memory_order_relaxed);
    h.checks_failed = s.checks_failed.load(std::memory_order_relaxed);
    h.last_error = last_error_[i];
    out.push_back(std::move(h));
  }
  return out;
}

}  // namespace helios::pool
