#include "tenant/tenant_state.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace helios::tenant {
namespace {

constexpr uint64_t pack(uint32_t second, uint32_t count) {
  return (uint64_t{second} << 32) | count;
}
constexpr uint32_t second_of(uint64_t v) {
  return uint32_t(v >> 32);
}
constexpr uint32_t count_of(uint64_t v) {
  return uint32_t(v);
}
// Seconds since the clock's epoch, mod 2^32 (wraps after 136 years of uptime; differences are
// taken as signed, so wrap-around is harmless).
uint32_t second_at(Nanos now) {
  return uint32_t(uint64_t(now) / uint64_t(kNanosPerSec));
}

double effective_burst(const TenantLimits& l) {
  return l.qps_burst > 0 ? l.qps_burst : l.max_qps;
}

}  // namespace

std::string_view clip_tenant_name(std::string_view name) {
  if (name.size() <= kMaxTenantName) return name;
  size_t cut = kMaxTenantName;
  // name[cut] is the first byte dropped; if it continues a UTF-8 sequence, drop the whole
  // sequence (at most 3 bytes back to its lead byte).
  while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;
  return name.substr(0, cut);
}

const char* rejection_name(Rejection r) {
  switch (r) {
    case Rejection::kConnections:
      return "connections";
    case Rejection::kQps:
      return "qps";
    case Rejection::kAcquireTimeout:
      return "acquire_timeout";
    case Rejection::kTransactionDuration:
      return "transaction_duration";
    case Rejection::kMaxActive:
      return "max_active";
    case Rejection::kCount:
      break;
  }
  return "unknown";
}

TenantState::TenantState(uint32_t index, std::string_view name, const TenantLimits& limits,
                         Nanos now)
    : index_(index) {
  std::string_view clipped = clip_tenant_name(name);
  std::memcpy(name_, clipped.data(), clipped.size());
  name_len_ = static_cast<uint8_t>(clipped.size());
  set_limits(limits, now);
}

TenantLimits TenantState::limits() const {
  TenantLimits l;
  l.max_connections = max_connections_.load(std::memory_order_relaxed);
  l.max_active = max_active_.load(std::memory_order_relaxed);
  l.max_qps = max_qps_.load(std::memory_order_relaxed);
  l.qps_burst = qps_burst_.load(std::memory_order_relaxed);
  l.qps_max_wait = qps_max_wait_.load(std::memory_order_relaxed);
  l.max_transaction_duration = max_txn_.load(std::memory_order_relaxed);
  l.weight = weight_.load(std::memory_order_relaxed);
  l.pool_mode_override = pool_mode_.load(std::memory_order_relaxed);
  l.data_path_override = data_path_.load(std::memory_order_relaxed);
  l.tier = tier_.load(std::memory_order_relaxed);
  return l;
}

void TenantState::set_limits(const TenantLimits& l, Nanos now) {
  max_connections_.store(l.max_connections, std::memory_order_relaxed);
  max_active_.store(l.max_active, std::memory_order_relaxed);
  // Only a changed rate or burst touches the bucket, so a reload keeps its fill exactly.
  if (l.max_qps != max_qps_.load(std::memory_order_relaxed) ||
      l.qps_burst != qps_burst_.load(std::memory_order_relaxed))
    bucket_.configure(l.max_qps, effective_burst(l), now);
  max_qps_.store(l.max_qps, std::memory_order_relaxed);
  qps_burst_.store(l.qps_burst, std::memory_order_relaxed);
  qps_max_wait_.store(l.qps_max_wait, std::memory_order_relaxed);
  max_txn_.store(l.max_transaction_duration, std::memory_order_relaxed);
  weight_.store(std::max<uint32_t>(1, l.weight), std::memory_order_relaxed);
  pool_mode_.store(l.pool_mode_override, std::memory_order_relaxed);
  data_path_.store(l.data_path_override, std::memory_order_relaxed);
  tier_.store(l.tier, std::memory_order_relaxed);
}

void TenantState::set_qps_share(double share, Nanos now) {
  double rate = max_qps_.load(std::memory_order_relaxed);
  if (!(rate > 0)) return;  // unlimited: nothing to share
  double burst = qps_burst_.load(std::memory_order_relaxed);
  if (!(burst > 0)) burst = rate;
  // A share of 0 still runs a bucket (0.001/s, the slowest it has): 0 would mean unlimited.
  double r = share < 0 ? rate : std::max(std::min(share, rate), 0.001);
  double b = std::max(1.0, burst * r / rate);
  if (std::abs(bucket_.rate() - r) < 1e-9 * r && std::abs(bucket_.burst() - b) < 1e-6) return;
  bucket_.configure(r, b, now);
}

bool TenantState::try_admit_connection(bool count_refusal, uint32_t cap) {
  uint32_t limit = max_connections_.load(std::memory_order_relaxed);
  if (limit == 0) {
    client_connections_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  // A fleet share, when there is one, is the local limit (0: none free here now).
  if (cap != kNoCap) limit = cap;
  uint32_t cur = client_connections_.load(std::memory_order_relaxed);
  do {
    if (cur >= limit) {
      if (count_refusal) record_rejection(Rejection::kConnections);
      return false;
    }
  } while (!client_connections_.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
  return true;
}

bool TenantState::try_begin_active(uint32_t cap) {
  uint32_t limit = max_active_.load(std::memory_order_relaxed);
  if (limit == 0) {
    active_leases_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (cap != kNoCap) limit = cap;
  uint32_t cur = active_leases_.load(std::memory_order_relaxed);
  do {
    if (cur >= limit) return false;
  } while (!active_leases_.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
  return true;
}

void TenantState::record_query(Nanos now, Nanos duration) {
  queries_total_.fetch_add(1, std::memory_order_relaxed);
  query_ns_total_.fetch_add(uint64_t(std::max<Nanos>(0, duration)), std::memory_order_relaxed);
  uint32_t sec = second_at(now);
  uint64_t cur = window_cur_.load(std::memory_order_relaxed);
  for (;;) {
    // Same second, or a straggler from an earlier second: count it in the current bucket.
    if (int32_t(sec - second_of(cur)) <= 0) {
      if (window_cur_.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed)) return;
      continue;
    }
    if (window_cur_.compare_exchange_weak(cur, pack(sec, 1), std::memory_order_relaxed)) {
      window_prev_.store(second_of(cur) + 1 == sec ? cur : pack(sec - 1, 0),
                         std::memory_order_relaxed);
      return;
    }
  }
}

double TenantState::current_qps(Nanos now) const {
  uint32_t sec = second_at(now);
  double into = double(uint64_t(now) % uint64_t(kNanosPerSec)) / double(kNanosPerSec);
  uint64_t cur = window_cur_.load(std::memory_order_relaxed);
  uint64_t prev = window_prev_.load(std::memory_order_relaxed);
  uint32_t this_second = 0, last_second = 0;
  if (second_of(cur) == sec) {
    this_second = count_of(cur);
    if (second_of(prev) == sec - 1) last_second = count_of(prev);
  } else if (second_of(cur) == sec - 1) {
    last_second = count_of(cur);
  }
  return double(this_second) + double(last_second) * (1.0 - into);
}

TenantStats TenantState::stats(Nanos now) const {
  TenantStats s;
  s.index = index_;
  s.name = name();
  s.rule = rule();
  s.limits = limits();
  s.client_connections = client_connections();
  s.active_leases = active_leases();
  s.queued = queued();
  s.queries_total = queries_total_.load(std::memory_order_relaxed);
  s.transactions_total = transactions_total_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < s.rejections.size(); ++i) s.rejections[i] = rejections(Rejection(i));
  uint64_t ns = query_ns_total_.load(std::memory_order_relaxed);
  s.avg_query_ms = s.queries_total ? double(ns) / double(s.queries_total) / 1e6 : 0.0;
  s.current_qps = current_qps(now);
  return s;
}

}  // namespace helios::tenant
