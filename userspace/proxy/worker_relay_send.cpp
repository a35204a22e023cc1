// The user-space data path: what the relay queues for a backend, the sends that carry it, and
// backpressure on a client's input; plus re-preparing a tracked statement on the lease's backend.
#include <sys/socket.h>

#include <cstring>

#include "common/log.h"
#include "pg/protocol.h"
#include "pg/reader.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "proxy/worker.h"

namespace helios::proxy {

// Makes sure the backend has `stmt` before the message being relayed: appends Close+Parse (both
// replies swallowed) to `out` if it does not, and evicts the least recently used statement over
// the cache cap. `front`: the bytes go in front of queued messages (lease start).
void Worker::ensure_prepared(Client* c, pool::Backend* b, const session::PreparedPtr& stmt,
                             std::string& out, bool front) {
  auto push = [&](session::Expect e) {
    if (front)
      c->tracker.push_front(track_pool_, e, session::Reply::kSwallow, stmt->id);
    else
      c->tracker.push(track_pool_, e, session::Reply::kSwallow, stmt->id);
  };
  if (b->statements.contains(stmt->id)) {
    b->statements.touch(stmt->id);
    return;
  }
  // Close first: harmless when absent, and correct if the session has a stale copy.
  pg::write_close(out, 'S', stmt->server_name);
  pg::write_parse_raw(out, stmt->server_name, stmt->tail);
  if (front) {  // entries go in front in reverse order
    push(session::Expect::kParse);
    push(session::Expect::kClose);
  } else {
    push(session::Expect::kClose);
    push(session::Expect::kParse);
  }
  auto evicted =
      b->statements.insert(stmt->id, size_t(cfg_->connection_pool.prepared_statement_cache_size));
  if (evicted) {
    pg::write_close(out, 'S', session::server_statement_name(*evicted));
    if (front)
      c->tracker.push_front(track_pool_, session::Expect::kClose, session::Reply::kSwallow);
    else
      c->tracker.push(track_pool_, session::Expect::kClose, session::Reply::kSwallow);
  }
}

void Worker::emit_synthetic(Client* c) {
  if (c->tracker.empty()) return;
  c->tracker.drain_synthetic(track_pool_, [&](session::Reply r) {
    std::string out;
    switch (r) {
      case session::Reply::kSynthParse:
        pg::write_parse_complete(out);
        break;
      case session::Reply::kSynthClose:
        pg::write_close_complete(out);
        break;
      case session::Reply::kSynthReady:
        pg::write_ready_for_query(out, c->backend ? c->backend->tx_status : 'I');
        break;
      default:
        break;
    }
    c->to_client.push_owned(*chunks_, out);
  });
}

void Worker::flush_backend(Client* c) {
  pool::Backend* b = c->backend;
  if (!b || c->throttled || c->to_backend.in_flight()) return;
  if (c->to_backend.empty() && !(b->tls && !b->tls->out().empty() && !b->tls->out().in_flight()))
    return;
  if (!c->txn_started) c->txn_started = now_;
  if (!c->query_started) c->query_started = now_;
  if (b->tls) {  // encrypt what is queued; the ciphertext queue is what goes out
    c->to_backend.drain(*chunks_, [&](const uint8_t* d, uint32_t n) {
      if (auto st = b->tls->write(std::string_view(reinterpret_cast<const char*>(d), n), *chunks_);
          !st)
        log::warn("backend pid {}: TLS: {}", b->process_id, st.error().message);
    });
    if (b->tls->out().in_flight() || b->tls->out().empty()) return;
    submit_send(b->tls->out(), b->fd.get(), pack(Op::kBackendSend, c->slot, c->gen));
    ++c->inflight;
    ++b->inflight;
    ++b->sends_inflight;
    c->sending_to = b;
    return;
  }
  path_->before_backend_send(c, b);  // the replies to what goes now may take the data path
  submit_send(c->to_backend, b->fd.get(), pack(Op::kBackendSend, c->slot, c->gen));
  ++c->inflight;
  ++b->inflight;
  ++b->sends_inflight;
  c->sending_to = b;
}

void Worker::on_backend_send(Client* c, int res) {
  --c->inflight;
  pool::Backend* b = c->sending_to;
  c->sending_to = nullptr;
  --b->inflight;
  --b->sends_inflight;
  io::SendQueue& q = b->tls ? b->tls->out() : c->to_backend;
  complete_send(q, res);
  if (c->backend == b && c->loss_deferred) {
    // Its server went away while this send was in flight (worker_backend_loss.cpp).
    c->loss_deferred = false;
    if (!survive_backend_loss(c, b, "the server closed the connection")) {
      c->backend = nullptr;
      ctx_.on_lease_end(c);
      send_error(c, true, pg::sqlstate::kConnectionFailure,
                 "server closed the connection unexpectedly");
      b->finish = pool::Backend::Finish::kDiscard;
    }
  } else if (c->backend == b && c->retry.deferred) {
    // Its server ended before answering while this send was in flight: now the transaction
    // can go to another backend.
    if (!retry_lease(c, b)) {
      c->retry.disarm();
      c->backend = nullptr;
      ctx_.on_lease_end(c);
      send_error(c, true, pg::sqlstate::kConnectionFailure,
                 "server closed the connection unexpectedly");
    }
    b->finish = pool::Backend::Finish::kDiscard;
  } else if (res < 0 && c->backend == b && c->retry.armed && retry_lease(c, b)) {
    b->finish = pool::Backend::Finish::kDiscard;
  } else if (res < 0) {
    log::warn("backend pid {}: send failed: {}", b->process_id, std::strerror(-res));
    b->broken = true;
    q.clear(*chunks_);
    c->to_backend.clear(*chunks_);
    if (c->backend == b) {
      send_error(c, true, pg::sqlstate::kConnectionFailure,
                 "lost the connection to the database server");
    }
  } else if (c->backend == b) {
    flush_backend(c);
    update_client_input(c);
  }
  if (b->finish != pool::Backend::Finish::kNone) finish_backend(b);
  maybe_free(c);
}

void Worker::update_client_input(Client* c) {
  if (c->state == ClientState::kClosing || c->state == ClientState::kFree) return;
  uint32_t to_server = c->to_backend.bytes(), to_client = client_backlog(c);
  if (!c->recv_paused && (to_server > kPauseBytes || to_client > kPauseBytes))
    pause_client_input(c);
  else if (c->recv_paused && to_server < kResumeBytes && to_client < kResumeBytes)
    resume_client_input(c);
}

void Worker::pause_client_input(Client* c) {
  if (c->recv_paused) return;
  c->recv_paused = true;
  if (c->recv_armed) {
    io_uring_sqe* sqe = ring_->sqe();
    io_uring_prep_cancel64(sqe, pack(Op::kClientRecv, c->slot, c->gen), 0);
    sqe->user_data = pack(Op::kCancelOp, 0, 0);
  }
}

void Worker::resume_client_input(Client* c) {
  c->recv_paused = false;
  arm_client_recv(c);
}

}  // namespace helios::proxy
