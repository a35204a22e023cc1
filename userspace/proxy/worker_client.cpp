// A client's life on its worker: the slot table, the state machine's one setter (set_state,
// with the per-state timer lists), receiving, sending to the client with backpressure, errors,
// close and free.
#include "proxy/worker.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cassert>

#include "common/log.h"
#include "io/listener.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "proxy/startup_state.h"

namespace helios::proxy {

Client* Worker::client_at(uint32_t slot, uint32_t gen) {
  if (slot >= slots_used_) return nullptr;
  Client* c = &client_chunks_[slot / kClientChunkSize][slot % kClientChunkSize];
  return c->gen == gen && c->state != ClientState::kFree ? c : nullptr;
}

Client* Worker::take_slot() {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    if (slots_used_ >= ctx_.cancel_keys.max_slots()) return nullptr;  // cancel_key.h
    if (slots_used_ % kClientChunkSize == 0)
      client_chunks_.push_back(std::make_unique<Client[]>(kClientChunkSize));
    slot = slots_used_++;
  }
  Client* c = &client_chunks_[slot / kClientChunkSize][slot % kClientChunkSize];
  uint32_t gen = c->gen + 1;
  *c = Client{};
  c->slot = slot;
  c->gen = gen;
  return c;
}

Client* Worker::new_client(int fd) {
  Client* c = take_slot();
  if (!c) return nullptr;
  c->fd = fd;
  c->startup = std::make_unique<StartupState>();
  stats_.clients.fetch_add(1, std::memory_order_relaxed);
  Nanos now = monotonic_now();
  c->state = ClientState::kFree;  // set_state links it into the startup list
  set_state(c, ClientState::kStartup, now);
  c->deadline = now + cfg_->proxy.startup_timeout;
  arm_client_recv(c);
  if (!enter_preauth(c))
    refuse_preauth(c, PreauthRefusal::kPerSourceLimit, pg::sqlstate::kTooManyConnections,
                   "too many unauthenticated connections from this address: "
                   "max_unauthenticated_per_source is " +
                       std::to_string(cfg_->proxy.max_unauthenticated_per_source));
  return c;
}

Worker::TimerList* Worker::list_for(ClientState s) {
  switch (s) {
    case ClientState::kStartup:
    case ClientState::kAuthLookup:
    case ClientState::kAuthSasl:
    case ClientState::kAuthMd5:
      return &startup_list_;
    case ClientState::kQueued:
    case ClientState::kWelcome:
      return &queued_list_;
    case ClientState::kActive:
      return &active_list_;
    case ClientState::kThrottled:
      return &throttled_list_;
    case ClientState::kClosing:
      return &closing_list_;
    default:
      return nullptr;
  }
}

bool Worker::set_state(Client* c, ClientState s, Nanos now) {
  if (!client_transition_allowed(c->state, s)) {
    // A bug: the state a caller wants is not one this state can reach. The client stays where
    // it is (its timers and lists stay consistent); the refusal is counted and logged.
    assert(false && "illegal client state transition");
    ctx_.metrics.count_refused_transition(Machine::kClient);
    uint64_t suppressed = 0;
    if (bug_log_.allow(now, &suppressed))
      log::error("worker {}: refused client state transition {} -> {} ({} earlier suppressed)", id_,
                 to_string(c->state), to_string(s), suppressed);
    return false;
  }
  TimerList* from = list_for(c->state);
  TimerList* to = list_for(s);
  if (from != to) {
    if (from) {  // unlink
      if (c->timer_prev)
        c->timer_prev->timer_next = c->timer_next;
      else
        from->head = c->timer_next;
      if (c->timer_next)
        c->timer_next->timer_prev = c->timer_prev;
      else
        from->tail = c->timer_prev;
      c->timer_prev = c->timer_next = nullptr;
    }
    if (to) {  // append: lists stay ordered by entry time
      c->timer_prev = to->tail;
      c->timer_next = nullptr;
      if (to->tail)
        to->tail->timer_next = c;
      else
        to->head = c;
      to->tail = c;
    }
    c->state_since = now;
  }
  c->state = s;
  return true;
}

void Worker::arm_client_recv(Client* c) {
  if (c->recv_armed || c->recv_paused || c->recv_starved) return;
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_recv_multishot(sqe, c->fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = bufs_->group_id();
  sqe->user_data = pack(Op::kClientRecv, c->slot, c->gen);
  c->recv_armed = true;
  ++c->inflight;
}

void Worker::on_client_recv(Client* c, int res, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) {
    c->recv_armed = false;
    --c->inflight;
    if (c->moving) {  // worker_move.cpp: the recv was cancelled to hand the client over
      c->moving = false;
      if (res == -ECANCELED && finish_move(c)) return;
    }
  }
  if (res > 0) {
    uint16_t bid = uint16_t(flags >> IORING_CQE_BUFFER_SHIFT);
    bufs_->on_delivered(bid);
    stats_.bytes_from_clients.fetch_add(uint64_t(res), std::memory_order_relaxed);
    path_->client_read(c, uint32_t(res));
    if (c->state != ClientState::kClosing) {
      if (c->tls) {
        // TLS: decrypt; the plaintext is relayed as copies (no receive buffer behind it).
        std::string plain;
        auto st = c->tls->feed(bufs_->data(bid), uint32_t(res), plain, *chunks_);
        flush_client(c);  // handshake records
        if (!st) {
          if (st.error().code != ECONNRESET) log::info("client TLS: {}", st.error().message);
          abort_client(c);
        } else if (!plain.empty()) {
          auto* p = reinterpret_cast<const uint8_t*>(plain.data());
          if (c->startup && c->state != ClientState::kWelcome)
            on_startup_bytes(c, p, uint32_t(plain.size()));
          else
            on_client_data(c, kNoBuffer, p, uint32_t(plain.size()));
        }
      } else if (c->startup && c->state != ClientState::kWelcome) {
        on_startup_bytes(c, bufs_->data(bid), uint32_t(res));
      } else {
        on_client_data(c, bid, bufs_->data(bid), uint32_t(res));
      }
    }
    bufs_->unref(bid);
    if (!c->recv_armed && c->state != ClientState::kClosing && c->state != ClientState::kFree)
      arm_client_recv(c);
    maybe_free(c);
    return;
  }
  if (res == -ENOBUFS) {  // every receive buffer is in use: retry when some come back
    if (!c->recv_armed && !c->recv_starved) {
      c->recv_starved = true;
      starved_.push_back(c);
    }
    return;
  }
  if (path_->recv_preempted(c, res)) {  // woken for bytes the data path took
    if (!c->recv_armed && c->state != ClientState::kClosing) arm_client_recv(c);
    maybe_free(c);
    return;
  }
  if (res == -ECANCELED) {
    // Only a pause cancels a client's recv. If the client was resumed before the cancel
    // completed, arming was a no-op then (the recv was still armed): arm now.
    if (!c->recv_armed && c->state != ClientState::kClosing && c->state != ClientState::kFree)
      arm_client_recv(c);
    maybe_free(c);
    return;
  }
  // EOF or error: the client is gone.
  if (c->state != ClientState::kClosing) close_client(c);
  maybe_free(c);
}

void Worker::queue_to_client(Client* c, std::string_view bytes) {
  c->to_client.push_owned(*chunks_, bytes);
  flush_client(c);
}

void Worker::submit_send(io::SendQueue& q, int fd, uint64_t user_data) {
  io::SendOp* op = send_ops_.get();
  int n = q.prepare(op->iov);
  io_uring_sqe* sqe = ring_->sqe();
  if (n == 1) {
    io_uring_prep_send(sqe, fd, op->iov[0].iov_base, op->iov[0].iov_len, MSG_NOSIGNAL);
    send_ops_.put(op);
  } else {
    op->mh.msg_iovlen = size_t(n);
    q.op = op;
    io_uring_prep_sendmsg(sqe, fd, &op->mh, MSG_NOSIGNAL);
  }
  sqe->user_data = user_data;
}

void Worker::complete_send(io::SendQueue& q, int res) {
  send_ops_.put(q.op);
  q.op = nullptr;
  q.complete(*chunks_, res > 0 ? uint32_t(res) : 0);
}

void Worker::flush_client(Client* c) {
  if (c->tls && !c->to_client.in_flight()) {
    // Plaintext is encrypted as it is flushed; the ciphertext queue is what goes out.
    c->to_client.drain(*chunks_, [&](const uint8_t* d, uint32_t n) {
      if (auto st = c->tls->write(std::string_view(reinterpret_cast<const char*>(d), n), *chunks_);
          !st)
        log::info("client TLS: {}", st.error().message);
    });
    io::SendQueue& out = c->tls->out();
    if (c->sending_tls || out.in_flight() || out.empty()) return;
    submit_send(out, c->fd, pack(Op::kClientSend, c->slot, c->gen));
    c->sending_tls = true;
    ++c->inflight;
    return;
  }
  if (c->to_client.in_flight() || c->to_client.empty()) return;
  // The data path's own bytes to this socket go first.
  if (!path_->client_writable(c) || c->to_client.in_flight() || c->to_client.empty()) return;
  submit_send(c->to_client, c->fd, pack(Op::kClientSend, c->slot, c->gen));
  ++c->inflight;
}

uint32_t Worker::client_backlog(const Client* c) const {
  return c->to_client.bytes() + (c->tls ? c->tls->out().bytes() : 0);
}

void Worker::on_client_send(Client* c, int res) {
  --c->inflight;
  io::SendQueue& q = c->sending_tls ? c->tls->out() : c->to_client;
  c->sending_tls = false;
  complete_send(q, res);
  if (res > 0) path_->client_written(c, uint32_t(res));
  if (res < 0) {
    q.clear(*chunks_);
    c->to_client.clear_if_idle(*chunks_);
    if (c->state != ClientState::kClosing) close_client(c);
    // The peer is gone: nothing more will be flushed, so shut the socket to complete the recv
    // that is still armed (close_client left it open to flush a final error).
    ::shutdown(c->fd, SHUT_RDWR);
    maybe_free(c);
    return;
  }
  if (c->state == ClientState::kClosing && c->fatal_sent && client_backlog(c) == 0) {
    ::shutdown(c->fd, SHUT_RDWR);
  }
  flush_client(c);
  // Backpressure: read from the backend, and the client's requests, once the client caught up.
  if (c->backend && c->backend->recv_paused && client_backlog(c) < kResumeBytes) {
    c->backend->recv_paused = false;
    arm_backend_recv(c->backend);
  }
  update_client_input(c);
  maybe_free(c);
}

void Worker::send_error(Client* c, bool fatal, std::string_view sqlstate, std::string_view message,
                        std::string_view detail) {
  ctx_.metrics.count_error(sqlstate);
  std::string out;
  pg::write_error_response(out, fatal ? "FATAL" : "ERROR", sqlstate, message, detail);
  if (!fatal) {
    pg::write_ready_for_query(out, 'I');
  }
  queue_to_client(c, out);
  if (fatal) {
    c->fatal_sent = true;
    close_client(c);
  }
}

void Worker::close_client(Client* c) {
  if (c->state == ClientState::kClosing || c->state == ClientState::kFree) return;
  path_->client_closing(c);
  Nanos now = monotonic_now();
  if (c->state == ClientState::kQueued || c->state == ClientState::kWelcome) {
    if (c->gate_waiting) {
      // A slot already handed to us is given back by on_gate_open when it finds us gone.
      if (ctx_.gates.cancel(c->tenant, {id_, c->slot, c->gen})) c->gate_waiting = false;
    } else if (c->pool) {
      // If the pool had already granted us a backend, the grant finds the client gone and
      // returns the backend itself.
      waiting_pool(c)->cancel_wait(&c->waiter);
    }
    c->awaiting_primary = false;
  }
  detach_backend_on_close(c);
  release_active(c);
  set_state(c, ClientState::kClosing, now);
  leave_preauth(c);
  c->startup.reset();
  c->to_backend.clear_if_idle(*chunks_);
  if (c->counted) {
    c->counted = false;
    ctx_.client_connections.fetch_sub(1, std::memory_order_relaxed);
    ctx_.on_client_closed(c);
  }
  if (client_backlog(c) == 0 || !c->fatal_sent) {
    // Nothing worth flushing (or the peer is gone): shut the socket so outstanding recv and send
    // complete now.
    ::shutdown(c->fd, SHUT_RDWR);
  }
  maybe_free(c);
}

void Worker::abort_client(Client* c) {
  c->fatal_sent = false;
  close_client(c);
}

void Worker::maybe_free(Client* c) {
  if (c->state != ClientState::kClosing || c->inflight > 0) return;
  if (c->to_backend.in_flight() || c->to_client.in_flight() || c->sending_tls) return;
  c->to_client.clear(*chunks_);
  c->to_backend.clear(*chunks_);
  if (c->tls) c->tls->out().clear(*chunks_);
  c->tls.reset();
  c->framer.reset();
  c->framer.release_scratch();
  c->tracker.clear(track_pool_);
  if (c->pinned) ctx_.pinned_clients.fetch_sub(1, std::memory_order_relaxed);
  c->pinned = false;
  c->session.reset();
  c->retry.disarm();
  c->retry.again = false;
  path_->client_freed(c);
  if (c->moved) ctx_.moved.forget(c->issued_pid, c->cancel_key);
  ::close(c->fd);
  c->fd = -1;
  c->params.reset();
  ctx_.tenants.release(c->tenant);  // from here the registry may evict it
  c->tenant = nullptr;
  c->startup.reset();
  set_state(c, ClientState::kFree, monotonic_now());
  free_slots_.push_back(c->slot);
  stats_.clients.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace helios::proxy
