// A client: one application connection to the proxy, owned by the worker that accepted it.
// Its state machine is explicit (ClientState); Worker::set_state() is the one place that moves
// a client between states and the worker's per-state timer lists.
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
#include "server/client_session.h"
#include "server/lease_retry.h"
#include "server/params.h"
#include "server/response_tracker.h"

namespace helios::tenant {
class TenantState;
}

namespace helios::server {

enum class ClientState : uint8_t {
  kStartup,     // reading the startup packet (again after answering SSLRequest/GSSENCRequest)
  kAuthLookup,  // waiting for the user's secret (auth_query on a connector thread)
  kAuthSasl,    // SCRAM-SHA-256 exchange
  kAuthMd5,     // waiting for the md5 PasswordMessage
  kWelcome,     // authenticated; waiting for a first backend to learn the server's parameters
  kIdle,        // between transactions, no backend
  kThrottled,   // has statements to run but its tenant is over max_qps: waiting for tokens
  kQueued,      // has work for a backend; waiting in its pool's fair queue
  kActive,      // leased: paired with a backend
  kClosing,     // no more input; flushing what is queued, then closing
  kFree,        // slot unused
};

const char* to_string(ClientState s);

struct StartupState;  // startup/auth scratch, freed once the client is authenticated

// A client's side of the kernel data path (server/worker_kernel.cpp), allocated when its socket
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
  bool recv_armed = false;      // multishot recv outstanding
  bool recv_paused = false;     // stopped reading: backend queue full (backpressure)
  bool recv_starved = false;    // multishot ended for lack of buffers; re-arm when some return
  bool unsynced = false;        // forwarded extended-protocol messages not yet followed by Sync
  bool terminate = false;       // client sent Terminate
  bool fatal_sent = false;      // an error was queued; close once flushed
  bool counted = false;         // counted in the global client connection limit
  bool tenant_counted = false;  // counted in its tenant's max_connections
  bool skip_to_sync = false;
  bool forward_body = false;        // the body of the message being read goes to the backend
  bool active_held = false;         // counted in its tenant's active leases (max_active)
  bool gate_waiting = false;        // queued at its tenant's max_active gate
  bool throttled = false;           // statements held until the tenant's QPS bucket has tokens
  bool duration_cancelled = false;  // its transaction ran past max_transaction_duration
  bool track_statements = false;    // rewrite named statements (prepared_statement_mode track)
  bool pinned = false;              // session state binds it to its backend (see ClientSession)
  bool ran_transaction = false;     // has had a lease (drain: a fresh client may run one)
  control::PoolMode mode = control::PoolMode::kTransaction;  // of the current / next lease
  uint16_t pending_queries = 0;  // statements received, not yet admitted by the QPS bucket    // a
                                 // refused extended-protocol message: discard until Sync
  uint16_t inflight = 0;         // io_uring ops outstanding that reference this slot
  uint32_t outstanding = 0;      // ReadyForQuery messages the client still expects
  // Query/Sync/FunctionCall messages forwarded to a server (wrapping); rfq_sent - outstanding
  // of them have been answered.
  uint32_t rfq_sent = 0;
  uint32_t cancel_key = 0;  // secret half of the BackendKeyData the proxy issued

  Nanos state_since = 0;
  Nanos throttle_since = 0;      // when the held statements started waiting for QPS tokens
  Nanos txn_started = 0;         // start of the transaction in progress (0 = none)
  Nanos query_started = 0;       // when the oldest unanswered statement was sent
  Nanos deadline = 0;            // of the current timed state (startup, queued, transaction)
  Nanos last_activity = 0;       // last bytes from the client or reply that answered it
  Client* timer_prev = nullptr;  // per-state timer list of the worker
  Client* timer_next = nullptr;

  pool::Waiter waiter;  // while kQueued / kWelcome
  pool::Pool* pool = nullptr;
  pool::Backend* backend = nullptr;     // while kActive
  pool::Backend* sending_to = nullptr;  // backend of the send in flight from to_backend
  tenant::TenantState* tenant = nullptr;
  ParamSetPtr params;                // session parameters the client wants (lower-case names)
  ParamSetPtr startup_params;        // as given at startup: what RESET ALL / DISCARD ALL return to
  ResponseTracker tracker;           // replies owed for the messages sent on its behalf
  std::unique_ptr<io::TlsConn> tls;  // TLS session (ciphertext goes out through tls->out())
  bool sending_tls = false;          // the client send in flight is from tls->out()
  std::unique_ptr<ClientSession> session;
  std::unique_ptr<StartupState> startup;
  std::unique_ptr<ClientKernel> kernel;  // joined the splice engine (kernel data path)
  LeaseRetry retry;                      // the lease's transaction may go to another backend

  pg::StreamFramer framer;  // client -> backend direction
  io::SendQueue to_backend;
  io::SendQueue to_client;
};

}  // namespace helios::server
