// idle_transaction_timeout: a client that opened a transaction and stopped talking holds its
// backend; after the timeout it gets FATAL 25P03 (PostgreSQL's
// idle_in_transaction_session_timeout) and is closed, and its backend is rolled back and goes
// back to the pool (Worker::close_client -> begin_cleanup).
#include "pg/sqlstate.h"
#include "proxy/worker.h"

namespace helios::proxy {

void Worker::check_idle_transaction(Client* c, Nanos now) {
  Nanos limit = cfg_->connection_pool.idle_transaction_timeout;
  if (limit <= 0 || c->state != ClientState::kActive || !c->backend) return;
  Nanos since = c->last_activity > c->state_since ? c->last_activity : c->state_since;
  if (now - since < limit) return;
  // The client has been silent that long. A lease whose replies go through the kernel comes
  // back first (as for max_transaction_duration): only then is the worker's view of the
  // transaction (its status, the replies owed) current. After that the lease stays in user
  // space, so a long statement is taken back once, not at every tick.
  if (!path_->settle(c)) return;
  if (c->state != ClientState::kActive || !c->backend) return;
  // Idle in a transaction: the server said so, nothing is owed to the client, nothing from it
  // is on its way to the server.
  if (c->backend->tx_status == 'I' || c->outstanding > 0 || c->wire.unsynced) return;
  if (!c->framer.at_boundary() || !c->to_backend.empty()) return;
  send_error(c, true, pg::sqlstate::kIdleInTransactionSessionTimeout,
             "terminating connection due to idle-in-transaction timeout");
}

}  // namespace helios::proxy
