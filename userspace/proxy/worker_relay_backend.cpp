// The user-space data path, backend -> client: replies are framed, matched to their requests
// (ResponseTracker), forwarded as ranges of the receive buffers they arrived in, and ReadyForQuery
// moves the lease on (note_replies, maybe_end_lease).
#include <sys/socket.h>

#include "common/log.h"
#include "pg/protocol.h"
#include "pg/reader.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "proxy/worker.h"

namespace helios::proxy {

// Backend -> client.
struct BackendHandler {
  Worker& w;
  pool::Backend* b;
  Client* c;    // nullptr while the backend is being cleaned up after its client left
  int32_t bid;  // provided buffer holding `data`, or kNoBuffer (TLS plaintext: copy it)
  const uint8_t* data;
  bool& forward;  // per backend: a message body continues across receive buffers
  bool lease_may_end = false;
  bool desync = false;           // a reply no request asked for: the session can't be trusted
  bool injected_failed = false;  // the error being handled answers a message the proxy injected
  // The server ended the session after the lease's transaction was answered in full: the
  // client owes and is owed nothing, so it just loses this backend (not its connection).
  bool died_between = false;

  bool between_transactions() const {
    if (c->mode == config::PoolMode::kSession || c->pinned || c->outstanding > 0 || c->wire.unsynced ||
        !c->to_backend.empty() || b->tx_status != 'I')
      return false;
    return !c->session ||
           !(c->session->probe_wanted || c->session->probe_inflight || c->session->restore_wanted ||
             c->session->restore_inflight || c->session->ready_held);
  }

  bool probe_reply() const {
    const session::TrackEntry* head = c ? c->tracker.head() : nullptr;
    return head && head->reply == session::Reply::kProbe;
  }

  uint32_t prefix_wanted(char type, uint32_t length) {
    switch (type) {
      case pg::be::kReadyForQuery:
        return 1;
      case pg::be::kParameterStatus:
        return length - 4;  // small; we record it
      case pg::be::kErrorResponse:
        return 512;                   // severity, SQLSTATE, message
      case pg::be::kCommandComplete:  // "ROLLBACK" drops staged session changes
        return c && c->session && c->session->has_staged() ? std::min<uint32_t>(length - 4, 16) : 0;
      case pg::be::kDataRow:  // a row of the session-state probe's answer is read whole
        return probe_reply() ? length - 4 : 0;
      default:
        return 0;
    }
  }

  void on_parameter_status(std::string_view body, bool internal) {
    auto ps = pg::parse_parameter_status(body);
    if (!ps) return;
    std::string name(ps->name);
    bool found = false;
    for (auto& [k, v] : b->params)
      if (k == name) v = std::string(ps->value), found = true;
    if (!found) b->params.emplace_back(name, std::string(ps->value));
    // The client changed a reported parameter (SET): carry it to its next backend.
    if (c && !internal && session::is_tracked_parameter(session::lower(name))) {
      std::string value(ps->value);
      c->params = w.ctx_.params.with(c->params, session::lower(name), &value);
      b->synced_params = c->params;
      // Session mode follows a tenant named by SET application_name (applied after this
      // input is relayed).
      if (c->mode == config::PoolMode::kSession && session::lower(name) == w.tenant_parameter_)
        w.tenant_changes_.emplace_back(c, value);
    }
  }

  void on_message(const pg::FramedMessage& m) {
    std::string_view body(reinterpret_cast<const char*>(m.body()), m.captured());
    if (!c) {  // cleanup: the proxy's own queries; nothing reaches a client
      forward = false;
      if (m.type == pg::be::kReadyForQuery) {
        if (m.captured() >= 1) b->tx_status = char(m.body()[0]);
        if (b->swallow_rfq) --b->swallow_rfq;
      } else if (m.type == pg::be::kErrorResponse) {
        if (auto f = pg::parse_error_response(body); f) {
          if (f->is_fatal()) b->broken = true;
          log::warn("backend pid {}: cleanup query failed: {}: {}", b->process_id, f->sqlstate,
                    f->message);
        }
      } else if (m.type == pg::be::kParameterStatus && m.complete()) {
        on_parameter_status(body, true);
      }
      return;
    }
    // Asynchronous messages belong to no request.
    if (m.type == pg::be::kNoticeResponse || m.type == pg::be::kNotificationResponse ||
        m.type == pg::be::kParameterStatus) {
      const session::TrackEntry* head = c->tracker.head();
      // A notification is for the client's session whatever statement runs when it comes.
      // The restore of the client's startup values is the client's too (worker_restore.cpp).
      bool restoring = c->session && c->session->restore_inflight;
      bool internal = head && m.type != pg::be::kNotificationResponse &&
                      ((head->reply == session::Reply::kSwallow && !restoring) ||
                       head->reply == session::Reply::kProbe);
      bool held = false;  // around a reset: the client gets the net changes (worker_restore.cpp)
      if (m.type == pg::be::kParameterStatus && m.complete()) {
        held = !internal && w.hold_parameter_status(c, b, body);
        on_parameter_status(body, internal);
      }
      forward = !internal && !held;
      if (forward) push_prefix(m);
      return;
    }
    // A FATAL the server sends on its own (terminated by an administrator, shutting down)
    // answers no request: the client gets it and the session ends with the connection.
    if (m.type == pg::be::kErrorResponse && c->tracker.empty()) {
      if (auto f = pg::parse_error_response(body); f && f->is_fatal()) {
        b->broken = true;
        if (between_transactions()) {
          died_between = true;
          forward = false;
          return;
        }
        forward = true;
        push_prefix(m);
        return;
      }
    }
    w.emit_synthetic(c);  // replies the proxy owes before this one
    // A Parse the server skipped after an error never created its statement there.
    auto skipped = [](void* ctx, const session::TrackEntry& e) {
      auto* backend = static_cast<pool::Backend*>(ctx);
      if (e.expect == session::Expect::kParse && e.stmt &&
          !session::ResponseTracker::is_synthetic(e.reply))
        backend->statements.erase(e.stmt);
    };
    auto o = c->tracker.on_backend_message(w.track_pool_, m.type, skipped, b);
    // An injected extended-protocol message failed: the server now skips the client's messages
    // up to its Sync, so the client must see the error instead of a bare ReadyForQuery.
    // Injected messages the proxy ended with its own Sync (before a simple Query) need not.
    injected_failed = o.failed && !o.forward;
    if (o.failed && !o.forward && o.expect != session::Expect::kQuery && !injected_sync_next())
      o.forward = true;
    if (o.unexpected) {
      log::error(
          "backend pid {}: reply '{}' does not match the pending request; closing the "
          "session",
          b->process_id, m.type);
      desync = true;
    }
    forward = o.forward;
    if (o.probe) {  // the proxy's own question: read here, never forwarded
      if (m.type == pg::be::kReadyForQuery && m.captured() >= 1) {
        b->tx_status = char(m.body()[0]);
        lease_may_end = true;  // the answer is in: the backend may go now
      }
      if (!desync) w.on_probe_message(c, b, m.type, body, m.complete());
      return;
    }
    switch (m.type) {
      case pg::be::kReadyForQuery:
        if (m.captured() >= 1) b->tx_status = char(m.body()[0]);
        if (!forward && c->session && c->session->restore_inflight) {
          w.restore_done(c, b);
          lease_may_end = true;
        }
        if (forward) {
          if (c->outstanding > 0) --c->outstanding;
          w.note_replies(c, 1, b->tx_status);
          if (c->session) w.settle_effects(c, b->tx_status);
          lease_may_end = true;
          // A reset puts the client's startup values back first, and the lease ends with a
          // session-state probe: this ReadyForQuery waits for them.
          if (w.hold_ready_for_restore(c, b) || w.hold_ready_for_probe(c, b)) forward = false;
        }
        break;
      case pg::be::kErrorResponse:
        if (o.forward && c->session) c->session->txn_failed = c->session->request_failed = true;
        if (auto f = pg::parse_error_response(body); f) on_error_response(*f, o, m);
        break;
      case pg::be::kCommandComplete:
        if (o.forward && c->session && body == std::string_view("ROLLBACK\0", 9))
          c->session->txn_failed = true;
        break;
      default:
        break;
    }
    if (forward) push_prefix(m);
  }

  bool injected_sync_next() const {
    const session::TrackEntry* h = c->tracker.head();
    return h && h->expect == session::Expect::kSync && h->reply == session::Reply::kSwallow;
  }

  void on_error_response(const pg::ErrorFields& f, const session::ResponseTracker::Outcome& o,
                         const pg::FramedMessage& m) {
    if (f.is_fatal()) b->broken = true;
    if (o.stmt) {
      // The statement is not (or no longer usable) on this backend: a failed Parse never
      // created it, and "cached plan must not change result type" after a schema change means
      // the server copy is stale. Forget it; the next use re-prepares it.
      if (o.expect == session::Expect::kParse ||
          f.message.find("cached plan must not change result type") != std::string::npos)
        b->statements.erase(o.stmt);
      // A Parse the client asked for failed (here, or deferred to this backend): its name must
      // not stay bound, or later Binds would report our name instead of the client's. Not when
      // the proxy's own Parse (re-preparing or deferred) met a transaction that had already
      // failed (25P02): on a direct connection the statement would still be prepared.
      if (o.expect == session::Expect::kParse && o.forward && c->session &&
          !(injected_failed && f.sqlstate == pg::sqlstate::kInFailedSqlTransaction))
        std::erase_if(c->session->statements,
                      [&](const auto& kv) { return kv.second->id == o.stmt; });
    }
    if (!o.forward)
      log::warn("backend pid {}: proxy-internal statement failed: {}: {}", b->process_id,
                f.sqlstate, f.message);
    // A statement we cancelled for max_transaction_duration: say why, not "user request".
    if (o.forward && c->duration_cancelled && m.complete() &&
        f.sqlstate == pg::sqlstate::kQueryCanceled) {
      std::string out;
      pg::write_error_response(
          out, "ERROR", pg::sqlstate::kQueryCanceled,
          "canceling statement: the transaction exceeded max_transaction_duration of " +
              std::to_string(c->tenant->max_transaction_duration() / kNanosPerMilli) +
              " ms for tenant \"" + std::string(c->tenant->name()) + "\"");
      c->to_client.push_owned(*w.chunks_, out);
      forward = false;
    }
  }

  void push_prefix(const pg::FramedMessage& m) {
    if (m.in_place && bid != kNoBuffer)
      c->to_client.push_borrowed(*w.chunks_, uint16_t(bid), data + m.offset, m.prefix_len);
    else if (m.in_place)
      c->to_client.push_owned(
          *w.chunks_,
          std::string_view(reinterpret_cast<const char*>(data + m.offset), m.prefix_len));
    else
      c->to_client.push_owned(
          *w.chunks_, std::string_view(reinterpret_cast<const char*>(m.prefix), m.prefix_len));
  }
  void on_body(uint32_t off, uint32_t n) {
    if (!forward || !c) return;
    if (bid != kNoBuffer)
      c->to_client.push_borrowed(*w.chunks_, uint16_t(bid), data + off, n);
    else
      c->to_client.push_owned(*w.chunks_,
                              std::string_view(reinterpret_cast<const char*>(data + off), n));
  }
  void on_message_end() {
    if (c) w.emit_synthetic(c);  // replies the proxy owes right after this one
  }
  void on_error(const char* what) {
    log::error("backend pid {}: unframeable data from the server: {}", b->process_id, what);
    b->broken = true;
  }
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

void Worker::on_backend_recv(pool::Backend* b, int res, uint32_t flags) {
  if (b->splice.joined && res != -EAGAIN && res != -ENOBUFS && res != -ECANCELED) {
    if (res > 0) b->splice.on_read(uint64_t(res));
    // Bytes (or the end of the stream) from a backend whose replies the kernel was carrying:
    // the kernel handed the lease back, ended it, or the server went away. Settle the lease
    // before they are handled. The recv still counts as in flight, so an ended lease's backend
    // is not released under our feet.
    if (b->state == pool::BackendState::kLeased && b->finish == pool::Backend::Finish::kNone)
      if (Client* owner = client_at(b->client_slot, b->client_gen);
          owner && owner->backend == b && owner->kernel && owner->kernel->lease)
        (void)settle_kernel_lease(owner);
  }
  b->recv_armed = false;
  --b->inflight;
  Client* c = nullptr;
  if (b->state == pool::BackendState::kLeased && b->finish == pool::Backend::Finish::kNone) {
    c = client_at(b->client_slot, b->client_gen);
    if (c && c->backend != b) c = nullptr;
  }
  if (res > 0) {
    uint16_t bid = uint16_t(flags >> IORING_CQE_BUFFER_SHIFT);
    bufs_->on_delivered(bid);
    stats_.bytes_from_backends.fetch_add(uint64_t(res), std::memory_order_relaxed);
    if (!c) b->forward_body = false;
    std::string first;  // the lease's first reply, when it came in pieces (lease_retry.h)
    if (c && c->retry.armed && !b->tls) {
      // The first reply of the lease: a backend terminated before it ran anything says so
      // first; then the transaction goes to another one. Anything else: it is answering.
      switch (take_first_reply(c, bufs_->data(bid), uint32_t(res), &first)) {
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
        case FirstReply::kAnswer:
          break;
      }
      c->retry.disarm();
    }
    BackendHandler h{*this, b, c, bid, bufs_->data(bid), b->forward_body};
    if (!first.empty()) {  // the pieces held, now relayed as a copy
      bufs_->unref(bid);
      h.bid = kNoBuffer;
      h.data = reinterpret_cast<const uint8_t*>(first.data());
      b->framer.feed(h.data, uint32_t(first.size()), h);
    } else if (b->tls) {  // decrypt; the plaintext is relayed as copies
      std::string plain;
      auto st = b->tls->feed(bufs_->data(bid), uint32_t(res), plain, *chunks_);
      bufs_->unref(bid);
      if (!st) {
        log::warn("backend pid {}: TLS: {}", b->process_id, st.error().message);
        b->broken = true;
      }
      h.bid = kNoBuffer;
      h.data = reinterpret_cast<const uint8_t*>(plain.data());
      if (!plain.empty()) b->framer.feed(h.data, uint32_t(plain.size()), h);
    } else {
      // After a kernel lease: first the rest of a message the kernel began, sent on raw.
      bool ready = false;
      uint32_t raw = resume_backend(b, c, bid, bufs_->data(bid), uint32_t(res), &ready);
      h.data = bufs_->data(bid) + raw;
      h.lease_may_end = ready;
      b->framer.feed(h.data, uint32_t(res) - raw, h);
      bufs_->unref(bid);
    }
    if (c) {
      flush_client(c);
      if (!tenant_changes_.empty()) {
        auto changes = std::move(tenant_changes_);
        tenant_changes_.clear();
        for (auto& [cl, name] : changes) follow_tenant(cl, name);
        if (c->state == ClientState::kClosing) return;
      }
      if (client_backlog(c) > kPauseBytes) b->recv_paused = true;
      update_client_input(c);
      if (h.died_between && !h.desync && c->tracker.empty() && c->outstanding == 0) {
        log::info("worker {}: backend pid {} of pool {} ended between transactions; replacing it",
                  id_, b->process_id, c->pool->name());
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
      if (c->kernel && c->backend == b) maybe_splice(c, b);
      if (c->backend == b) arm_backend_recv(b);
      return;
    }
    on_backend_recv_unattached(b, /*had_data=*/true);
    return;
  }
  // ENOBUFS: out of receive buffers for a moment. EAGAIN: the socket is in the splice engine
  // and the verdict forwarded what woke the recv. Either way: try again.
  if (res == -ENOBUFS || res == -EAGAIN) {
    if (b->cancel_issued || b->finish != pool::Backend::Finish::kNone) {
      finish_backend(b);  // the lease is over: this was the recv being cancelled
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
