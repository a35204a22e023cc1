// A backend: one proxy->PostgreSQL connection. Lives in the global BackendTable; moves between
// its pool's idle list (any worker may lease it) and a worker that owns it for one lease.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/unique_fd.h"
#include "pg/framer.h"
#include "pool/pg_conn.h"
#include "pool/statement_cache.h"

namespace helios::pool {

class Pool;

enum class BackendState : uint8_t {
  kIdle,     // in its pool's idle list; no I/O outstanding
  kLeased,   // paired with a client; the client's worker does all I/O on it
  kCleanup,  // its client left: a worker is rolling back / resetting it before it returns
  kClosed,   // slot free
};

const char* to_string(BackendState s);

// A data path's own state for one backend connection (proxy/kernel_path.h), freed when the
// connection closes. The pool never looks inside.
struct PathState {
  virtual ~PathState() = default;
};

// The backend state machine's table:
//   closed -> idle | leased (a new connection goes to the idle list or straight to a waiter)
//   idle -> leased         leased -> idle | cleanup (its client left)   cleanup -> idle | leased
//   any -> closed          leased -> leased (released straight to the next waiter)
bool backend_transition_allowed(BackendState from, BackendState to);

struct Backend {
  uint32_t index = 0;  // slot in the BackendTable
  uint32_t gen = 0;    // bumped when the slot is reused: stale completions are detected
  UniqueFd fd;
  BackendState state = BackendState::kClosed;  // changed only by move_to()
  Pool* pool = nullptr;
  int32_t process_id = 0;  // PostgreSQL's BackendKeyData, for cancels
  int32_t secret_key = 0;
  Nanos created_at = 0;
  Nanos expires_at = 0;  // created_at + max_lifetime - jitter
  Nanos idle_since = 0;

  // Lease ownership (kLeased / kCleanup): which worker and which client.
  uint16_t worker = 0;
  uint32_t client_slot = 0;
  uint32_t client_gen = 0;
  Nanos lease_started = 0;
  // Bumped at every lease start; a cancel captured under one lease is dropped under another.
  std::atomic<uint64_t> lease_seq{0};

  // What to do with the backend once no I/O is outstanding on it.
  enum class Finish : uint8_t { kNone, kRelease, kDiscard, kCleanup };

  // Data-path state, touched only by the owning worker.
  uint32_t inflight = 0;  // io_uring operations outstanding on fd (recv + sends)
  uint32_t sends_inflight = 0;
  Finish finish = Finish::kNone;
  bool cancel_issued = false;  // an ASYNC_CANCEL for the armed recv was submitted
  bool cleanup_rollback = false;
  bool cleanup_reset = false;
  std::string control_out;   // proxy-internal queries sent while no client is attached
  uint16_t swallow_rfq = 0;  // proxy-internal queries whose responses the client never sees
  char tx_status = 'I';
  bool recv_armed = false;
  bool recv_paused = false;  // client's outgoing queue is full: backpressure
  // TCP_USER_TIMEOUT (ms) put aside while recv_paused: the server stops reading our sends
  // because we stopped reading its replies, which is no sign of a dead host (Worker::
  // pause_backend_recv). 0: nothing put aside.
  uint32_t user_timeout_held_ms = 0;
  bool broken = false;              // I/O error or protocol violation: close instead of reuse
  bool forward_body = false;        // the body of the message being read goes to the client
  pg::StreamFramer framer;          // backend -> client direction
  std::unique_ptr<PathState> path;  // the data path's state, if it keeps any (lease_path.h)
  ParamList params;  // session parameters as the server reports / as the proxy set them
  std::shared_ptr<const void> synced_params;  // the client parameter set `params` matches
  StatementCache statements;                  // prepared statements (hp_<id>) this session holds
  bool probe_prepared = false;  // the session-state probe is prepared here (proxy/worker_probe.cpp)
  std::unique_ptr<io::TlsConn> tls;  // [backend] sslmode: the session runs over TLS

  // Idle list links (pool lock).
  Backend* idle_prev = nullptr;
  Backend* idle_next = nullptr;

  void reset_for_reuse();

  // The one place a backend changes state: false, with the state unchanged, if the table above
  // does not allow it (asserts in a debug build; the caller counts it).
  bool move_to(BackendState s);
};

}  // namespace helios::pool
