// The user-space data path, backend -> client: replies are framed, matched to their requests
// (ResponseTracker), forwarded as ranges of the receive buffers they arrived in, and ReadyForQuery
// moves the lease on (note_replies, maybe_end_lease).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "common/log.h"
#include "pg/protocol.h"
#include "pg/reader.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "proxy/reply_decoder.h"
#include "proxy/worker.h"

namespace helios::proxy {

// The ReplyDecoder's sink over a lease's client (or none, while the backend is cleaned up).
class WorkerReplySink final : public ReplySink {
 public:
  WorkerReplySink(Worker& w, pool::Backend* b, Client* c, int32_t bid)
      : w_(w), b_(b), c_(c), bid_(bid) {}
  void set_buffer(int32_t bid) { bid_ = bid; }

  bool attached() const override { return c_ != nullptr; }
  session::ResponseTracker& tracker() override { return c_->tracker; }
  session::ClientSession* session_if() override { return c_->session.get(); }
  bool survives_loss() const override { return w_.may_survive_loss(c_); }
  bool between_transactions() const override {
    const Client* c = c_;
    if (c->mode == config::PoolMode::kSession || c->pinned || c->outstanding > 0 ||
        c->wire.unsynced || !c->to_backend.empty() || b_->tx_status != 'I')
      return false;
    return !c->session ||
           !(c->session->probe_wanted || c->session->probe_inflight || c->session->restore_wanted ||
             c->session->restore_inflight || c->session->ready_held);
  }

  void forward(const uint8_t* p, uint32_t n, bool in_input) override {
    // Bytes in a provided receive buffer are borrowed; TLS plaintext, a first reply gathered
    // in pieces (kNoBuffer) and prefixes the framer gathered across inputs are copied.
    if (in_input && bid_ != kNoBuffer)
      c_->to_client.push_borrowed(*w_.chunks_, uint16_t(bid_), p, n);
    else
      c_->to_client.push_owned(*w_.chunks_, std::string_view(reinterpret_cast<const char*>(p), n));
  }
  void send(std::string_view bytes) override { c_->to_client.push_owned(*w_.chunks_, bytes); }
  void emit_synthetic() override { w_.emit_synthetic(c_); }

  void client_parameter(std::string_view name, std::string_view value) override {
    std::string v(value);
    c_->params = w_.ctx_.params.with(c_->params, std::string(name), &v);
    b_->synced_params = c_->params;
    // Session mode follows a tenant named by SET application_name (applied after this input
    // is relayed).
    if (c_->mode == config::PoolMode::kSession && name == w_.tenant_parameter_)
      w_.tenant_changes_.emplace_back(c_, std::move(v));
  }
  bool hold_parameter_status(std::string_view body) override {
    return w_.hold_parameter_status(c_, b_, body);
  }
  void probe_message(char type, std::string_view body, bool complete) override {
    w_.on_probe_message(c_, b_, type, body, complete);
  }
  void restore_done() override { w_.restore_done(c_, b_); }
  bool client_ready(char tx_status) override {
    if (c_->outstanding > 0) --c_->outstanding;
    w_.note_replies(c_, 1, tx_status);
    if (c_->session) w_.settle_effects(c_, tx_status);
    return w_.hold_ready_for_restore(c_, b_) || w_.hold_ready_for_probe(c_, b_);
  }
  std::string duration_cancel_message() override {
    if (!c_->duration_cancelled) return {};
    return "canceling statement: the transaction exceeded max_transaction_duration of " +
           std::to_string(c_->tenant->max_transaction_duration() / kNanosPerMilli) +
           " ms for tenant \"" + std::string(c_->tenant->name()) + "\"";
  }

 private:
  Worker& w_;
  pool::Backend* b_;
  Client* c_;
  int32_t bid_;  // provided buffer holding the input, or kNoBuffer (copies)
};

void Worker::arm_backend_recv(pool::Backend* b) {
  if (b->recv_armed || b->recv_paused) return;
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_recv(sqe, b->fd.get(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = bufs_->group_id();
  sqe->user_data = pack(Op::kBackendRecv, b->index, b->gen);
  b->recv_armed = true;
  ++b->inflight;
}

// While the proxy does not read a backend, PostgreSQL blocks writing its replies and stops
// reading what the proxy sends it: the window closes. TCP_USER_TIMEOUT (a dead host's guard,
// pool/connector.cpp) also ends a connection whose peer advertises a zero window that long
// (Linux 5.11+), so a client that reads nothing for tcp_user_timeout would lose its backend
// with ETIMEDOUT. It is put aside while paused, and restored once the server has answered all
// it was sent (restore_user_timeout), not at resume: the kernel times a zero window from its
// first probe, so a timeout restored while the window is still shut would end the connection at
// the next probe.
void Worker::pause_backend_recv(pool::Backend* b) {
  if (b->recv_paused) return;
  b->recv_paused = true;
  unsigned ms = 0;
  socklen_t len = sizeof ms;
  if (::getsockopt(b->fd.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, &len) != 0 || ms == 0) return;
  const unsigned off = 0;
  if (::setsockopt(b->fd.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &off, sizeof off) == 0)
    b->user_timeout_held_ms = ms;
}

void Worker::restore_user_timeout(pool::Backend* b) {
  if (b->user_timeout_held_ms != 0) {
    const unsigned ms = b->user_timeout_held_ms;
    ::setsockopt(b->fd.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
    b->user_timeout_held_ms = 0;
  }
}

void Worker::on_backend_recv(pool::Backend* b, int res, uint32_t flags) {
  path_->backend_read(b, res);  // a lease whose replies the data path carried comes back first
  b->recv_armed = false;
  --b->inflight;
  Client* c = nullptr;
  if (b->state == pool::BackendState::kLeased && b->finish == pool::Backend::Finish::kNone) {
    c = client_at(b->client_slot, b->client_gen);
    if (c && c->backend != b) c = nullptr;
  }
  if (res > 0) {
    on_backend_data(b, c, uint16_t(flags >> IORING_CQE_BUFFER_SHIFT), uint32_t(res));
    return;
  }
  // ENOBUFS: out of receive buffers for a moment: a lease's recv waits for some to come back
  // (re-arming at once would spin the worker until they do). EAGAIN: the socket is in the splice
  // engine and the verdict forwarded what woke the recv. Either way: try again.
  if (res == -ENOBUFS || res == -EAGAIN) {
    if (b->cancel_issued || b->finish != pool::Backend::Finish::kNone) {
      finish_backend(b);  // the lease is over: this was the recv being cancelled
      return;
    }
    if (res == -ENOBUFS && c && !c->backend_starved) {
      c->backend_starved = true;
      starved_leases_.emplace_back(c->slot, c->gen);
      return;
    }
    arm_backend_recv(b);
    return;
  }
  if (res == -ECANCELED && b->cancel_issued) {
    finish_backend(b);
    return;
  }
  // EOF or error: the server closed the connection.
  if (c && c->retry.armed && retry_lease(c, b)) {
    if (!c->retry.deferred) {
      b->finish = pool::Backend::Finish::kDiscard;
      finish_backend(b);
    }
    return;
  }
  b->broken = true;
  // Transaction mode: the client keeps its connection; what it was owed fails with 08006
  // (worker_backend_loss.cpp). Not when part of a reply message already reached it.
  if (c && b->framer.at_boundary() && !path_->reply_cut(b) &&
      survive_backend_loss(
          c, b,
          res == 0 ? "the server closed the connection" : "the connection to the server failed")) {
    return;
  }
  if (c) {
    c->backend = nullptr;
    ctx_.on_lease_end(c);
    if (!c->fatal_sent)
      send_error(c, true, pg::sqlstate::kConnectionFailure,
                 "server closed the connection unexpectedly");
    else
      close_client(c);
  }
  b->finish = pool::Backend::Finish::kDiscard;
  finish_backend(b);
}

// `len` bytes from the backend in provided buffer `bid`; `c` is the lease's client, if any.
void Worker::on_backend_data(pool::Backend* b, Client* c, uint16_t bid, uint32_t len) {
  bufs_->on_delivered(bid);
  stats_.bytes_from_backends.fetch_add(uint64_t(len), std::memory_order_relaxed);
  if (!c) b->forward_body = false;
  std::string first;  // the lease's first reply, when it came in pieces (lease_retry.h)
  if (c && c->retry.armed && !b->tls) {
    // The first reply of the lease: a backend terminated before it ran anything says so
    // first; then the transaction goes to another one. Anything else: it is answering.
    switch (take_first_reply(c, bufs_->data(bid), len, &first)) {
      case FirstReply::kPartial:  // an ErrorResponse begun: wait for the rest of it
        bufs_->unref(bid);
        arm_backend_recv(b);
        return;
      case FirstReply::kShutdown:
        if (retry_lease(c, b)) {
          bufs_->unref(bid);
          if (!c->retry.deferred) {
            b->finish = pool::Backend::Finish::kDiscard;
            finish_backend(b);
          }
          return;
        }
        break;
      case FirstReply::kReadOnly:
        if (retry_on_primary(c, b, first)) {
          bufs_->unref(bid);
          return;
        }
        break;
      case FirstReply::kAnswer:
        break;
    }
    c->retry.disarm();
  }
  WorkerReplySink sink{*this, b, c, bid};
  ReplyDecoder decoder(*b, track_pool_, sink);
  ReplyResult h;
  if (!first.empty()) {  // the pieces held, now relayed as a copy
    bufs_->unref(bid);
    sink.set_buffer(kNoBuffer);
    h = decoder.feed(reinterpret_cast<const uint8_t*>(first.data()), uint32_t(first.size()));
  } else if (b->tls) {  // decrypt; the plaintext is relayed as copies
    std::string plain;
    auto st = b->tls->feed(bufs_->data(bid), len, plain, *chunks_);
    bufs_->unref(bid);
    if (!st) {
      log::warn("backend pid {}: TLS: {}", b->process_id, st.error().message);
      b->broken = true;
    }
    sink.set_buffer(kNoBuffer);
    if (!plain.empty())
      h = decoder.feed(reinterpret_cast<const uint8_t*>(plain.data()), uint32_t(plain.size()));
  } else {
    // After a kernel lease: first the rest of a message the kernel began, sent on raw.
    bool ready = false;
    uint32_t raw = path_->resume_backend(b, c, bid, bufs_->data(bid), len, &ready);
    if (ready) decoder.set_lease_may_end();
    h = decoder.feed(bufs_->data(bid) + raw, len - raw);
    bufs_->unref(bid);
  }
  if (c) {
    after_replies(c, b, h);
    return;
  }
  on_backend_recv_unattached(b, /*had_data=*/true);
}

// The replies of one input were relayed: backpressure, a lost or desynchronized backend, the
// lease's end, and whether the rest may go through the data path.
void Worker::after_replies(Client* c, pool::Backend* b, const ReplyResult& h) {
  flush_client(c);
  if (!tenant_changes_.empty()) {
    auto changes = std::move(tenant_changes_);
    tenant_changes_.clear();
    for (auto& [cl, name] : changes) follow_tenant(cl, name);
    if (c->state == ClientState::kClosing) return;
  }
  if (client_backlog(c) > kPauseBytes)
    pause_backend_recv(b);
  else if (b->user_timeout_held_ms && c->outstanding == 0 && c->to_backend.empty())
    restore_user_timeout(b);  // everything sent was read and answered: the window is open
  update_client_input(c);
  if (h.lost && !h.desync) {
    // The server said FATAL (shutdown, terminated) while the client was in a transaction or
    // waiting: it keeps its connection and gets 08006 (worker_backend_loss.cpp).
    if (survive_backend_loss(c, b, h.lost_message)) return;
  }
  if (h.died_between && !h.desync && c->tracker.empty() && c->outstanding == 0) {
    log::info("worker {}: backend pid {} of pool {} ended between transactions; replacing it", id_,
              b->process_id, c->pool->name());
    end_lease(c);  // the broken backend is discarded, not released
    return;
  }
  if (b->broken || h.desync) {
    // The server said FATAL (e.g. terminated by an administrator), or the reply stream no
    // longer matches the requests: the client has what it was sent; the session is over.
    b->broken = true;
    c->backend = nullptr;
    ctx_.on_lease_end(c);
    if (h.desync && !c->fatal_sent)
      send_error(c, true, pg::sqlstate::kProtocolViolation,
                 "the proxy lost track of the server's replies; closing the session");
    else if (h.lost && !c->fatal_sent)  // its FATAL was not forwarded: say it here
      send_error(c, true, pg::sqlstate::kConnectionFailure,
                 "the connection to the database server was lost: " + h.lost_message);
    c->fatal_sent = true;
    close_client(c);
    b->finish = pool::Backend::Finish::kDiscard;
    finish_backend(b);
    return;
  }
  if (h.lease_may_end) maybe_end_lease(c);
  // Draining, session mode: the session is between transactions; end it.
  if (stopping_ && h.lease_may_end && c->mode == config::PoolMode::kSession) drain_if_idle(c);
  // The replies the proxy had to see (its own SETs ahead of the client's statement) are in:
  // what is still owed may go through the kernel. If more of the reply already reached the
  // socket, the kernel refuses the splice (not caught up) and the relay goes on here.
  if (c->backend == b) path_->before_backend_send(c, b);
  if (c->backend == b) arm_backend_recv(b);
}

// Data (or its absence) on a backend no client is attached to: cleanup replies, or a backend
// being released that unexpectedly spoke.
void Worker::on_backend_recv_unattached(pool::Backend* b, bool had_data) {
  using F = pool::Backend::Finish;
  if (b->finish == F::kCleanup) {  // cleanup queries not sent yet: nothing to expect
    arm_backend_recv(b);
    return;
  }
  if (b->state == pool::BackendState::kCleanup && b->finish == F::kNone) {
    if (b->broken) {
      b->finish = F::kDiscard;
    } else if (b->swallow_rfq > 0) {
      arm_backend_recv(b);
      return;
    } else {
      b->finish = b->tx_status == 'I' ? F::kRelease : F::kDiscard;
    }
  }
  bool cleaning = b->state == pool::BackendState::kCleanup;
  if (b->finish == F::kNone || (had_data && !cleaning && b->finish == F::kRelease)) {
    b->broken = true;  // spoke while nobody asked: don't trust it with another client
    b->finish = F::kDiscard;
  }
  finish_backend(b);
}

}  // namespace helios::proxy
