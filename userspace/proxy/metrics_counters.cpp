#include "proxy/metrics_counters.h"

#include <algorithm>

namespace helios::proxy {
namespace {

// 0 when the code is not a well-formed SQLSTATE (5 characters, digits or upper-case letters).
uint64_t pack_sqlstate(std::string_view s) {
  if (s.size() != 5) return 0;
  uint64_t key = 0;
  for (char c : s) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
    if (!ok) return 0;
    key = (key << 8) | uint8_t(c);
  }
  return key;
}

std::string unpack_sqlstate(uint64_t key) {
  std::string s(5, '0');
  for (int i = 4; i >= 0; --i) {
    s[size_t(i)] = char(key & 0xff);
    key >>= 8;
  }
  return s;
}

}  // namespace

const char* byte_path_name(BytePath p) {
  switch (p) {
    case BytePath::kUserspace:
      return "userspace";
    case BytePath::kKernel:
      return "kernel";
    case BytePath::kCount:
      break;
  }
  return "unknown";
}

const char* byte_direction_name(ByteDirection d) {
  switch (d) {
    case ByteDirection::kClientToServer:
      return "client_to_server";
    case ByteDirection::kServerToClient:
      return "server_to_client";
    case ByteDirection::kCount:
      break;
  }
  return "unknown";
}

const char* preauth_refusal_name(PreauthRefusal r) {
  switch (r) {
    case PreauthRefusal::kMessageTooLong:
      return "message_too_long";
    case PreauthRefusal::kPerSourceLimit:
      return "per_source_limit";
    case PreauthRefusal::kProtocolViolation:
      return "protocol_violation";
    case PreauthRefusal::kInvalidStartup:
      return "invalid_startup";
    case PreauthRefusal::kStartupTimeout:
      return "startup_timeout";
    case PreauthRefusal::kCount:
      break;
  }
  return "unknown";
}

const char* machine_name(Machine m) {
  return m == Machine::kClient ? "client" : "backend";
}

const char* login_failure_name(LoginFailure r) {
  switch (r) {
    case LoginFailure::kPassword:
      return "password";
    case LoginFailure::kTenantQuota:
      return "tenant_quota";
    case LoginFailure::kTenantClaim:
      return "tenant_claim";
    case LoginFailure::kClientLimit:
      return "client_limit";
    case LoginFailure::kNoLogin:
      return "no_login";
    case LoginFailure::kLookup:
      return "lookup";
    case LoginFailure::kUnknownRole:
      return "unknown_role";
    case LoginFailure::kCount:
      break;
  }
  return "unknown";
}

void MetricsCounters::count_error(std::string_view sqlstate) {
  uint64_t key = pack_sqlstate(sqlstate);
  if (key == 0) {
    errors_other_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  size_t start = size_t((key * 0x9E3779B97F4A7C15ull) >> 58) % kSqlstateSlots;
  for (size_t n = 0; n < kSqlstateSlots; ++n) {
    size_t i = (start + n) % kSqlstateSlots;
    uint64_t cur = error_keys_[i].load(std::memory_order_acquire);
    if (cur == 0) {
      // Claim the free slot; if another thread got it first, cur now holds its key.
      if (error_keys_[i].compare_exchange_strong(cur, key, std::memory_order_acq_rel)) cur = key;
    }
    if (cur == key) {
      error_counts_[i].fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  errors_other_.fetch_add(1, std::memory_order_relaxed);
}

void MetricsCounters::count_reload(bool ok, Nanos took) {
  if (ok) {
    reloads_ok_.fetch_add(1, std::memory_order_relaxed);
    reload_ns_total_.fetch_add(uint64_t(took > 0 ? took : 0), std::memory_order_relaxed);
  } else {
    reloads_failed_.fetch_add(1, std::memory_order_relaxed);
  }
}

MetricsCounters::Snapshot MetricsCounters::snapshot() const {
  Snapshot s;
  for (size_t i = 0; i < kSqlstateSlots; ++i) {
    uint64_t key = error_keys_[i].load(std::memory_order_acquire);
    if (key == 0) continue;
    s.errors.emplace_back(unpack_sqlstate(key), error_counts_[i].load(std::memory_order_relaxed));
  }
  std::sort(s.errors.begin(), s.errors.end());
  if (uint64_t other = errors_other_.load(std::memory_order_relaxed))
    s.errors.emplace_back("other", other);
  for (size_t p = 0; p < s.bytes.size(); ++p)
    for (size_t d = 0; d < s.bytes[p].size(); ++d)
      s.bytes[p][d] = bytes_[p][d].load(std::memory_order_relaxed);
  s.reloads_ok = reloads_ok_.load(std::memory_order_relaxed);
  s.reloads_failed = reloads_failed_.load(std::memory_order_relaxed);
  s.reload_ns_total = Nanos(reload_ns_total_.load(std::memory_order_relaxed));
  for (size_t i = 0; i < s.preauth_refusals.size(); ++i)
    s.preauth_refusals[i] = preauth_[i].load(std::memory_order_relaxed);
  for (size_t i = 0; i < s.login_failures.size(); ++i)
    s.login_failures[i] = login_failures_[i].load(std::memory_order_relaxed);
  for (size_t i = 0; i < s.refused_transitions.size(); ++i)
    s.refused_transitions[i] = refused_transitions_[i].load(std::memory_order_relaxed);
  s.protocol_violations = protocol_violations_.load(std::memory_order_relaxed);
  s.lease_retries = lease_retries_.load(std::memory_order_relaxed);
  s.replica_write_retries = replica_write_retries_.load(std::memory_order_relaxed);
  s.backend_losses_survived = backend_losses_survived_.load(std::memory_order_relaxed);
  s.query_timeouts = query_timeouts_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace helios::proxy
