// A client: one application connection to the proxy, owned by the worker that accepted it.
// Its state machine is explicit (ClientState, client_state.h); Worker::set_state() is the one
// place that moves a client between states and the worker's per-state timer lists.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "datapath/kernel_lease.h"
#include "io/send_queue.h"
#include "io/tls.h"
#include "pg/framer.h"
#include "pool/pool.h"
#include "proxy/client_decoder.h"
#include "proxy/client_state.h"
#include "proxy/lease_retry.h"
#include "session/client_session.h"
#include "session/params.h"
#include "session/response_tracker.h"

namespace helios::tenant {
class TenantState;
}

namespace helios::proxy {

struct StartupState;  // startup/auth scratch, freed once the client is authenticated

// A client's side of the kernel data path (proxy/kernel_path.cpp), allocated when its socket
// first joins the splice engine: most clients never do, and an idle client stays small.
struct ClientKernel {
  datapath::SpliceEndpoint ep;                 // bytes read / written since it joined
  std::optional<datapath::KernelLease> lease;  // while the backend's replies go through the kernel
  uint32_t seq = 0;                            // lease sequence of this client
  uint32_t spliced_outstanding = 0;            // Client::outstanding when the lease was spliced
  bool fence = false;  // before the next write: the kernel's bytes must have left (drained)
};

struct Client {
  uint32_t slot = 0;
  uint32_t gen = 0;
  int fd = -1;
  ClientState state = ClientState::kFree;
  bool recv_armed = false;          // multishot recv outstanding
  bool recv_paused = false;         // stopped reading: backend queue full (backpressure)
  bool recv_starved = false;        // multishot ended for lack of buffers; re-arm when some return
  bool backend_starved = false;     // its lease's backend recv too (Worker::starved_leases_)
  bool fatal_sent = false;          // an error was queued; close once flushed
  bool counted = false;             // counted in the global client connection limit
  bool tenant_counted = false;      // counted in its tenant's max_connections
  bool active_held = false;         // counted in its tenant's active leases (max_active)
  bool gate_waiting = false;        // queued at its tenant's max_active gate
  bool throttled = false;           // statements held until the tenant's QPS bucket has tokens
  bool duration_cancelled = false;  // its transaction ran past max_transaction_duration
  bool query_cancelled = false;     // its statement ran past query_timeout; cancel sent
  bool track_statements = false;    // rewrite named statements (prepared_statement_mode track)
  bool pinned = false;              // session state binds it to its backend (see ClientSession)
  bool ran_transaction = false;     // has had a lease (drain: a fresh client may run one)
  bool moving = false;              // its recv is being cancelled to hand it to another worker
  bool moved = false;               // lives on another worker than its key names (MovedClients)
  config::PoolMode mode = config::PoolMode::kTransaction;  // of the current / next lease
  uint16_t move_to = 0;                                    // the worker a moving client goes to
  uint16_t pending_queries = 0;  // statements received, not yet admitted by the QPS bucket
  uint16_t inflight = 0;         // io_uring ops outstanding that reference this slot
  uint32_t outstanding = 0;      // ReadyForQuery messages the client still expects
  // Query/Sync/FunctionCall messages forwarded to a server (wrapping); rfq_sent - outstanding
  // of them have been answered.
  uint32_t rfq_sent = 0;
  uint32_t cancel_key = 0;  // secret half of the BackendKeyData the proxy issued
  int32_t issued_pid = 0;   // process id half of it (names the worker and slot of its login)

  Nanos state_since = 0;
  Nanos throttle_since = 0;      // when the held statements started waiting for QPS tokens
  Nanos txn_started = 0;         // start of the transaction in progress (0 = none)
  Nanos query_started = 0;       // when the oldest unanswered statement was sent
  Nanos deadline = 0;            // of the current timed state (startup, queued, transaction)
  Nanos last_activity = 0;       // last bytes from the client or reply that answered it
  Client* timer_prev = nullptr;  // per-state timer list of the worker
  Client* timer_next = nullptr;

  pool::Waiter waiter;              // while kQueued / kWelcome
  pool::Pool* pool = nullptr;       // its home pool (first host): secret, parameters, metrics
  pool::Pool* wait_pool = nullptr;  // the pool of the lease it waits for (backend_route.h)
  bool on_replica = false;          // that lease goes to a replica (read/write split)
  bool awaiting_primary = false;    // queued until a primary is known (failover_timeout)
  Nanos primary_deadline = 0;       // of that wait (0: none started for this lease)
  // Its backend died while it was idle inside a transaction: the next statement gets 08006
  // (proxy/worker_backend_loss.cpp).
  bool txn_lost = false;
  bool loss_deferred = false;    // its backend died while a send to it was in flight
  bool lease_read_only = false;  // its lease's statements were proven read-only
  bool force_primary = false;  // a replica refused this lease's batch (25006): the primary runs it
  Nanos ryw_since = 0;         // end of its last lease on the primary (read-your-writes)
  uint64_t ryw_lsn = 0;        // primary WAL position its reads must see (0: not known yet)
  pool::Backend* backend = nullptr;     // while kActive
  pool::Backend* sending_to = nullptr;  // backend of the send in flight from to_backend
  tenant::TenantState* tenant = nullptr;
  session::ParamSetPtr params;  // session parameters the client wants (lower-case names)
  session::ParamSetPtr
      startup_params;                // as given at startup: what RESET ALL / DISCARD ALL return to
  session::ResponseTracker tracker;  // replies owed for the messages sent on its behalf
  std::unique_ptr<io::TlsConn> tls;  // TLS session (ciphertext goes out through tls->out())
  bool sending_tls = false;          // the client send in flight is from tls->out()
  std::unique_ptr<session::ClientSession> session;
  std::unique_ptr<StartupState> startup;
  std::unique_ptr<ClientKernel> kernel;  // joined the splice engine (kernel data path)
  LeaseRetry retry;                      // the lease's transaction may go to another backend

  pg::StreamFramer framer;  // client -> backend direction
  ClientWire wire;          // what the decoder keeps between inputs (client_decoder.h)
  io::SendQueue to_backend;
  io::SendQueue to_client;
};

// The pool a queued client waits in.
inline pool::Pool* waiting_pool(const Client* c) {
  return c->wait_pool ? c->wait_pool : c->pool;
}

// Nothing is owed or queued in either direction of a lease: no reply the client still expects,
// no extended-protocol batch waiting for its Sync, no half-read client message, nothing queued for
// the backend, no tracked reply outstanding and no ReadyForQuery the proxy itself must swallow.
// (WorkerReplySink::between_transactions asks a similar question of a lease whose backend said
// FATAL; it leaves the tracker to Worker::after_replies, which looks once the FATAL is consumed.)
inline bool lease_quiet(const Client* c, const pool::Backend* b) {
  return c->outstanding == 0 && !c->wire.unsynced && c->framer.at_boundary() &&
         c->to_backend.empty() && c->tracker.empty() && b->swallow_rfq == 0;
}

// The client's transaction is over: its backend's last ReadyForQuery said Idle ('I') and the
// client is owed no more of them. A transaction-mode lease ends when this holds and the lease is
// quiet (Worker::maybe_end_lease). The kernel data path's twin: `ends` in the backend branch of
// bpf/sockmap_splice.bpf.c (ReadyForQuery 'I' answering the last outstanding request, nothing
// unsynced, the client not mid-message).
inline bool transaction_ended(const Client* c, char tx_status) {
  return tx_status == 'I' && c->outstanding == 0;
}

}  // namespace helios::proxy
