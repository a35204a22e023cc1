// Counters the data path bumps for the metrics layer that no other component already keeps:
// errors sent by SQLSTATE, bytes moved by the kernel data path, reloads. (Pins by reason are
// SharedContext::pins_total; user-space bytes are Worker::Stats.)
// Every update is a relaxed atomic add (plus, the first time an SQLSTATE is seen, one CAS): no
// lock, no allocation. The metrics layer reads them at scrape time with snapshot().
//
// One instance per process, shared by every worker (it belongs in SharedContext).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace helios::proxy {

// The data path that moved a lease's bytes.
enum class BytePath : uint8_t { kUserspace = 0, kKernel, kCount };
enum class ByteDirection : uint8_t { kClientToServer = 0, kServerToClient, kCount };
const char* byte_path_name(BytePath p);            // "userspace", "kernel"
const char* byte_direction_name(ByteDirection d);  // "client_to_server", "server_to_client"

// Why a client was refused before it authenticated.
enum class PreauthRefusal : uint8_t {
  kMessageTooLong = 0,  // startup packet or authentication message over its cap
  kPerSourceLimit,      // its address already had max_unauthenticated_per_source
  kProtocolViolation,   // malformed or unexpected message before authentication
  kInvalidStartup,      // a startup PostgreSQL would refuse (parameters)
  kStartupTimeout,      // startup and auth did not finish within startup_timeout
  kCount
};
const char* preauth_refusal_name(PreauthRefusal r);  // "message_too_long", ...

// Why a client was refused at or after login, for the security counters.
enum class LoginFailure : uint8_t {
  kPassword = 0,  // wrong password or unknown user
  kTenantQuota,   // its tenant was at max_connections
  kTenantClaim,   // its user may not claim the tenant it named (allowed_users)
  kClientLimit,   // max_client_connections reached
  kNoLogin,       // right password, but the role is NOLOGIN
  kLookup,        // auth_query failed (e.g. the auth user may not read passwords)
  kUnknownRole,   // trust mode: no such role (password modes count it as kPassword)
  kCount
};
const char* login_failure_name(LoginFailure r);  // "password", "tenant_quota", ...

// The state machines whose refused transitions are counted (client_state.h, pool/backend.h).
enum class Machine : uint8_t { kClient = 0, kBackend, kCount };
const char* machine_name(Machine m);  // "client", "backend"

class MetricsCounters {
 public:
  // Distinct SQLSTATEs tracked by name; later ones are summed under "other".
  static constexpr size_t kSqlstateSlots = 64;

  // An ErrorResponse the proxy sent (or relayed) with this SQLSTATE. Codes that are not five
  // characters of [0-9A-Z] count as "other".
  void count_error(std::string_view sqlstate);
  void add_bytes(BytePath p, ByteDirection d, uint64_t n) {
    bytes_[size_t(p)][size_t(d)].fetch_add(n, std::memory_order_relaxed);
  }
  void count_reload(bool ok, Nanos took);
  void count_preauth_refusal(PreauthRefusal r) {
    preauth_[size_t(r)].fetch_add(1, std::memory_order_relaxed);
  }
  void count_login_failure(LoginFailure r) {
    login_failures_[size_t(r)].fetch_add(1, std::memory_order_relaxed);
  }
  // An authenticated client closed for a protocol violation (before authentication they are
  // preauth refusals).
  void count_protocol_violation() { protocol_violations_.fetch_add(1, std::memory_order_relaxed); }
  // A transaction sent to another backend because its first one ended before answering.
  void count_lease_retry() { lease_retries_.fetch_add(1, std::memory_order_relaxed); }
  void count_replica_write_retry() {
    replica_write_retries_.fetch_add(1, std::memory_order_relaxed);
  }
  // A lease's server went away and its client kept its connection (worker_backend_loss.cpp).
  void count_backend_loss_survived() {
    backend_losses_survived_.fetch_add(1, std::memory_order_relaxed);
  }
  // A statement the proxy cancelled because it ran past query_timeout.
  void count_query_timeout() { query_timeouts_.fetch_add(1, std::memory_order_relaxed); }

  // A state machine refused a transition its table does not allow (a bug; see client_state.h).
  void count_refused_transition(Machine m) {
    refused_transitions_[size_t(m)].fetch_add(1, std::memory_order_relaxed);
  }

  struct Snapshot {
    std::vector<std::pair<std::string, uint64_t>> errors;  // by SQLSTATE, then "other" if any
    std::array<std::array<uint64_t, size_t(ByteDirection::kCount)>, size_t(BytePath::kCount)>
        bytes{};
    uint64_t reloads_ok = 0;
    uint64_t reloads_failed = 0;
    Nanos reload_ns_total = 0;  // sum of took over successful reloads
    std::array<uint64_t, size_t(PreauthRefusal::kCount)> preauth_refusals{};
    std::array<uint64_t, size_t(LoginFailure::kCount)> login_failures{};
    std::array<uint64_t, size_t(Machine::kCount)> refused_transitions{};
    uint64_t protocol_violations = 0;
    uint64_t lease_retries = 0;
    uint64_t replica_write_retries = 0;
    uint64_t backend_losses_survived = 0;
    uint64_t query_timeouts = 0;
  };
  Snapshot snapshot() const;

 private:
  // Slot key: the 5 SQLSTATE characters packed into 40 bits (0 = free), claimed by CAS.
  std::array<std::atomic<uint64_t>, kSqlstateSlots> error_keys_{};
  std::array<std::atomic<uint64_t>, kSqlstateSlots> error_counts_{};
  std::atomic<uint64_t> errors_other_{0};
  std::array<std::array<std::atomic<uint64_t>, size_t(ByteDirection::kCount)>,
             size_t(BytePath::kCount)>
      bytes_{};
  std::atomic<uint64_t> reloads_ok_{0};
  std::atomic<uint64_t> reloads_failed_{0};
  std::atomic<uint64_t> reload_ns_total_{0};
  std::array<std::atomic<uint64_t>, size_t(PreauthRefusal::kCount)> preauth_{};
  std::array<std::atomic<uint64_t>, size_t(LoginFailure::kCount)> login_failures_{};
  std::array<std::atomic<uint64_t>, size_t(Machine::kCount)> refused_transitions_{};
  std::atomic<uint64_t> protocol_violations_{0};
  std::atomic<uint64_t> lease_retries_{0};
  std::atomic<uint64_t> replica_write_retries_{0};
  std::atomic<uint64_t> backend_losses_survived_{0};
  std::atomic<uint64_t> query_timeouts_{0};
};

}  // namespace helios::proxy
