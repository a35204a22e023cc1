// A lease's server went away (the primary stopped or crashed, the backend was terminated, the
// connection reset) while the client was inside a transaction or waiting for replies. In
// transaction and statement mode the client's session lives in the proxy (parameters, prepared
// statements), so, as RDS Proxy does, the client keeps its connection: every request it is
// still owed a ReadyForQuery for gets ErrorResponse 08006 and ReadyForQuery 'I' (its
// transaction is gone), an extended-protocol batch not yet ended by a Sync gets the error and
// its messages are skipped up to that Sync (as PostgreSQL does after an error), and a client
// that sat idle in the transaction gets the error for its next statement. Its next transaction
// starts a new lease (waiting up to failover_timeout for a primary when none is known).
//
// Not in session mode or for a pinned client: their server-side state (temp tables, locks,
// LISTEN, untracked settings) died with the backend, so they are closed with FATAL 08006 as
// before. Nor when the client already got part of a reply message, or the backend died in the
// middle of the proxy's own session-state probe or restore: the stream cannot be continued.
#include "common/log.h"
#include "pg/protocol.h"
#include "pg/reader.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "proxy/backend_route.h"
#include "proxy/worker.h"
#include "session/sql_lexer.h"

namespace helios::proxy {
namespace {

constexpr std::string_view kLostDetail =
    "The proxy kept the client connection; the transaction in progress, if any, was rolled back "
    "with the server connection. The next statement runs on a new server connection.";

std::string lost_message(std::string_view why) {
  std::string m = "the connection to the database server was lost";
  if (!why.empty()) m += std::string(": ") + std::string(why);
  return m;
}

// The whole queued batch is one simple Query whose only statement is ROLLBACK (or ABORT, with
// TRANSACTION or WORK): what the client wants of a transaction that is gone anyway.
bool is_lone_rollback(const Client* c) {
  if (c->outstanding != 1 || c->wire.unsynced || c->tracker.size() != 1) return false;
  std::string batch;
  c->to_backend.for_each([&](const uint8_t* d, uint32_t n) {
    if (batch.size() <= 256) batch.append(reinterpret_cast<const char*>(d), n);
  });
  if (batch.size() < 5 || batch.size() > 256 || batch[0] != pg::fe::kQuery) return false;
  pg::MessageReader header(std::string_view(batch).substr(1, 4));
  if (uint32_t(header.get_i32()) + 1 != batch.size()) return false;  // one message, whole
  pg::MessageReader body(std::string_view(batch).substr(5));
  std::string_view sql = body.get_cstring();
  if (!body.ok()) return false;
  session::SqlLexer lexer(sql);
  std::vector<session::SqlToken> tokens;
  size_t end = 0;
  int statements = 0;
  bool rollback = false;
  while (lexer.next_statement(&tokens, &end)) {
    if (tokens.empty()) continue;  // ";;" or a trailing ';'
    ++statements;
    auto word = [&](size_t k, std::string_view w) {
      return k < tokens.size() && tokens[k].kind == session::SqlToken::Kind::kWord &&
             tokens[k].text == w;
    };
    rollback =
        (word(0, "rollback") || word(0, "abort")) &&
        (tokens.size() == 1 || (tokens.size() == 2 && (word(1, "transaction") || word(1, "work"))));
  }
  return statements == 1 && rollback;
}

}  // namespace

// What the client is owed, failed: per request that ends in a ReadyForQuery, an ErrorResponse
// (unless its batch already had one) and ReadyForQuery 'I'; an unsynced batch gets the error
// and is skipped up to its Sync. False (nothing changed) when the tracker does not account for
// every ReadyForQuery owed.
static bool fail_owed(Client* c, session::TrackBlockPool& track_pool, std::string_view message,
                      std::string* out) {
  auto error = [&] {
    pg::write_error_response(*out, "ERROR", pg::sqlstate::kConnectionFailure, message, kLostDetail);
  };
  bool ok = true;
  bool errored = c->tracker.skipping();  // the server already failed the unsynced batch
  uint32_t owed = 0;
  std::vector<uint32_t> unbound;  // statements whose Parse never completed
  c->tracker.for_each([&](const session::TrackEntry& e) {
    if (e.reply == session::Reply::kSwallow) return;  // the proxy's own message
    if (e.reply == session::Reply::kProbe) {
      ok = false;
      return;
    }
    if (e.expect == session::Expect::kParse && e.stmt) unbound.push_back(e.stmt);
    switch (e.expect) {
      case session::Expect::kQuery:
        error();
        pg::write_ready_for_query(*out, 'I');
        errored = false;
        ++owed;
        break;
      case session::Expect::kSync:
        if (!errored) error();
        pg::write_ready_for_query(*out, 'I');
        errored = false;
        if (e.reply == session::Reply::kForward) ++owed;
        break;
      default:
        if (!errored) error();
        errored = true;
        break;
    }
  });
  if (!ok || owed != c->outstanding) {
    out->clear();
    return false;
  }
  if (c->wire.unsynced) {
    if (!errored) error();
    c->wire.unsynced = false;
    c->wire.skip_to_sync = true;
  }
  if (session::ClientSession* s = c->session.get()) {
    for (uint32_t id : unbound)
      std::erase_if(s->statements, [&](const auto& kv) { return kv.second->id == id; });
    s->pending.clear();
    s->staged.clear();  // their transaction is gone: SET/RESET/unpins in it never happened
    s->in_txn.clear();
    s->txn_failed = s->request_failed = false;
    s->last_status = 'I';
    s->restore_wanted = false;
    s->probe_wanted = false;  // the server session it would have asked about is gone
  }
  c->tracker.clear(track_pool);
  c->outstanding = 0;
  return true;
}

bool Worker::may_survive_loss(const Client* c) const {
  const session::ClientSession* s = c->session.get();
  return c->mode != config::PoolMode::kSession && !c->pinned && !stopping_ &&
         c->state == ClientState::kActive &&
         !(s && (s->probe_inflight || s->restore_inflight || s->ready_held || s->hold_status));
}

bool Worker::survive_backend_loss(Client* c, pool::Backend* b, std::string_view why) {
  if (!may_survive_loss(c) || !c->framer.at_boundary() || path_->holds(c)) return false;
  b->broken = true;
  if (c->to_backend.in_flight()) {
    // The send's buffers are the kernel's until it completes: on_backend_send comes back here.
    c->loss_deferred = true;
    return true;
  }
  c->loss_deferred = false;
  const bool in_txn = b->tx_status != 'I';
  std::string out;
  const std::string message = lost_message(why);
  if (!fail_owed(c, track_pool_, message, &out)) {
    log::warn("worker {}: backend pid {} lost; the replies owed to its client are not all known",
              id_, b->process_id);
    return false;
  }
  const bool answered = !out.empty();
  c->to_backend.clear(*chunks_);
  c->retry.disarm();
  c->txn_started = 0;
  c->query_started = 0;
  c->duration_cancelled = c->query_cancelled = false;
  // Nothing was answered but the client sat inside a transaction: its next statement is told.
  c->txn_lost = !answered && in_txn;
  c->backend = nullptr;
  c->framer.release_scratch();
  ctx_.on_lease_end(c);
  note_lease_end(ctx_, *cfg_, c, monotonic_now());  // it may have committed: read-your-writes
  release_active(c);
  set_state(c, ClientState::kIdle, monotonic_now());
  c->force_primary = false;
  ctx_.metrics.count_backend_loss_survived();
  log::info("worker {}: backend pid {} of pool {} lost ({}); its client keeps its connection{}",
            id_, b->process_id, b->pool->name(), why.empty() ? "closed" : why,
            answered ? " and got 08006" : (in_txn ? ", its transaction is gone" : ""));
  b->finish = pool::Backend::Finish::kDiscard;
  finish_backend(b);
  if (answered) {
    ctx_.metrics.count_error(pg::sqlstate::kConnectionFailure);
    queue_to_client(c, out);
  }
  flush_client(c);
  update_client_input(c);
  return true;
}

void Worker::answer_lost_transaction(Client* c) {
  if (!c->framer.at_boundary()) {  // the rest of the message first (it is small, or refused)
    if (c->to_backend.bytes() > kResumeBytes)
      send_error(c, true, pg::sqlstate::kConnectionFailure,
                 lost_message("the transaction in progress was lost"));
    return;
  }
  c->txn_lost = false;
  if (c->state == ClientState::kThrottled) set_state(c, ClientState::kIdle, monotonic_now());
  std::string out;
  if (is_lone_rollback(c)) {
    // The transaction is gone; rolling it back is what the client asked: done.
    pg::write_command_complete(out, "ROLLBACK");
    pg::write_ready_for_query(out, 'I');
    c->tracker.clear(track_pool_);
    c->outstanding = 0;
    if (c->session) c->session->staged.clear();
  } else if (!fail_owed(c, track_pool_, lost_message("the transaction in progress was lost"),
                        &out)) {
    send_error(c, true, pg::sqlstate::kConnectionFailure,
               lost_message("the transaction in progress was lost"));
    return;
  } else {
    ctx_.metrics.count_error(pg::sqlstate::kConnectionFailure);
  }
  c->to_backend.clear(*chunks_);
  queue_to_client(c, out);
  flush_client(c);
  update_client_input(c);
}

bool Worker::await_primary_after_failure(Client* c) {
  if (!ctx_.hosts || c->on_replica) return false;
  ctx_.hosts->drop_primary(waiting_pool(c)->key().host, "refuses connections");
  return await_primary(c);
}

bool Worker::await_primary(Client* c) {
  if (!ctx_.hosts || c->on_replica || cfg_->backend.failover_timeout <= 0 ||
      c->state != ClientState::kQueued)
    return false;
  Nanos now = monotonic_now();
  if (!c->primary_deadline) c->primary_deadline = now + cfg_->backend.failover_timeout;
  if (now >= c->primary_deadline) return false;
  c->awaiting_primary = true;
  c->deadline = now;  // polled from the tick (poll_primary_wait)
  return true;
}

}  // namespace helios::proxy
