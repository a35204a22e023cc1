#include "server/worker.h"

#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "io/listener.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "server/startup_state.h"

namespace helios::server {
namespace {
constexpr Nanos kTick = 20 * kNanosPerMilli;
constexpr uint16_t kBufferGroup = 1;
}  // namespace

const char* to_string(ClientState s) {
  switch (s) {
    case ClientState::kStartup:
      return "startup";
    case ClientState::kAuthLookup:
      return "auth_lookup";
    case ClientState::kAuthSasl:
      return "auth_sasl";
    case ClientState::kAuthMd5:
      return "auth_md5";
    case ClientState::kWelcome:
      return "welcome";
    case ClientState::kIdle:
      return "idle";
    case ClientState::kQueued:
      return "queued";
    case ClientState::kThrottled:
      return "throttled";
    case ClientState::kActive:
      return "active";
    case ClientState::kClosing:
      return "closing";
    case ClientState::kFree:
      return "free";
  }
  return "?";
}

Worker::Worker(uint16_t id, SharedContext& ctx) : id_(id), ctx_(ctx) {}

Worker::~Worker() = default;

Status Worker::init(UniqueFd listener) {
  auto ring = io::Ring::create({});
  if (!ring) return ring.error();
  ring_ = std::move(*ring);
  const auto& dp = cfg_->proxy;
  (void)dp;
  auto bufs = io::BufferRing::create(ring_->raw(), kBufferGroup, 4096, 16 * 1024);
  if (!bufs) return bufs.error();
  bufs_ = std::move(*bufs);
  chunks_ = std::make_unique<io::ChunkPool>(bufs_.get());
  listener_ = std::move(listener);
  log::debug("worker {}: io_uring {} ({} buffers of {} KiB)", id_, ring_->setup_description(),
             bufs_->count(), bufs_->buffer_size() / 1024);
  return {};
}

// ---------------------------------------------------------------------------------- loop

void Worker::run() {
  arm_accept();
  arm_splice_events();
  next_tick_ = monotonic_now() + kTick;
  while (true) {
    if (bufs_->publish() && !starved_.empty()) {
      auto starved = std::move(starved_);
      starved_.clear();
      for (Client* c : starved) {
        c->recv_starved = false;
        if (c->state != ClientState::kFree && c->state != ClientState::kClosing) arm_client_recv(c);
      }
    }
    Nanos now = monotonic_now();
    int rc = ring_->submit_and_wait(next_tick_ > now ? next_tick_ - now : 1);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
      log::error("worker {}: io_uring_enter: {}", id_, std::strerror(-rc));
    now_ = monotonic_now();
    ring_->drain([this](const io_uring_cqe& cqe) { dispatch(cqe); });
    if (mail_flagged_.load(std::memory_order_acquire)) drain_mail();
    run_deferred();
    now = monotonic_now();
    if (now >= next_tick_) {
      on_tick(now);
      next_tick_ = now + kTick;
    }
    if (stopping_ && stats_.clients.load(std::memory_order_relaxed) == 0 && !accept_armed_) break;
  }
  ring_->submit();
  listener_.reset();
  finished_.store(true, std::memory_order_release);
}

void Worker::dispatch(const io_uring_cqe& cqe) {
  uint64_t ud = cqe.user_data;
  Op op = op_of(ud);
  uint32_t flags = cqe.flags;
  // A receive buffer the kernel took from the ring and handed to a completion with no bytes in
  // it goes straight back. io_uring commits a selected ring buffer when the request completes,
  // whatever the result: an EAGAIN from a socket in the splice engine carries one. Kept, each
  // such completion lost a buffer until the ring ran dry and every receive on the worker stalled.
  auto give_back = [&](uint32_t f) {
    uint16_t bid = uint16_t(f >> IORING_CQE_BUFFER_SHIFT);
    bufs_->on_delivered(bid);
    bufs_->unref(bid);
  };
  if ((op == Op::kClientRecv || op == Op::kBackendRecv) && (flags & IORING_CQE_F_BUFFER) &&
      cqe.res <= 0) {
    give_back(flags);
    flags &= ~uint32_t(IORING_CQE_F_BUFFER);
  }
  switch (op) {
    case Op::kAccept:
      on_accept(cqe.res, flags);
      return;
    case Op::kClientRecv: {
      Client* c = client_at(slot_of(ud), gen_of(ud));
      if (!c) {
        if (flags & IORING_CQE_F_BUFFER) give_back(flags);
        return;
      }
      on_client_recv(c, cqe.res, flags);
      return;
    }
    case Op::kClientSend: {
      Client* c = client_at(slot_of(ud), gen_of(ud));
      if (c) on_client_send(c, cqe.res);
      return;
    }
    case Op::kBackendRecv: {
      pool::Backend* b = ctx_.backends.find(slot_of(ud), gen_of(ud));
      if (!b) {
        if (flags & IORING_CQE_F_BUFFER) give_back(flags);
        return;
      }
      on_backend_recv(b, cqe.res, flags);
      return;
    }
    case Op::kBackendSend: {
      Client* c = client_at(slot_of(ud), gen_of(ud));
      if (c) on_backend_send(c, cqe.res);
      return;
    }
    case Op::kGrant:
      on_grant(slot_of(ud), gen_of(ud), uint32_t(cqe.res));
      return;
    case Op::kFail:
      on_wait_failed(slot_of(ud), gen_of(ud), pool::WaitFailure(cqe.res));
      return;
    case Op::kMail:
      drain_mail();
      return;
    case Op::kControlSend: {
      pool::Backend* b = ctx_.backends.find(slot_of(ud), gen_of(ud));
      if (b) on_control_send(b, cqe.res);
      return;
    }
    case Op::kCancelOp:
      return;
    case Op::kSpliceEvents:
      on_splice_events();
      return;
    case Op::kMsgSent:
      log::error("worker {}: msg_ring failed: {}", id_, std::strerror(-cqe.res));
      return;
  }
  log::error("worker {}: completion with unknown op {}", id_, int(op_of(ud)));
}

void Worker::post(std::function<void(Worker&)> fn, pool::Messenger& via) {
  {
    std::lock_guard lock(mail_mu_);
    mail_.push_back(std::move(fn));
  }
  if (!mail_flagged_.exchange(true, std::memory_order_acq_rel)) via.mail(id_);
}

void Worker::send_msg(uint16_t worker, uint32_t res, uint64_t user_data) {
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_msg_ring(sqe, ctx_.workers[worker]->ring_fd(), res, user_data, 0);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = pack(Op::kMsgSent, 0, 0);
}

void Worker::mail(uint16_t worker) {
  if (worker != id_) send_msg(worker, 0, pack(Op::kMail, 0, 0));
  // Mail to ourselves is drained at the end of this loop iteration.
}

void Worker::drain_mail() {
  mail_flagged_.store(false, std::memory_order_release);
  std::vector<std::function<void(Worker&)>> mail;
  {
    std::lock_guard lock(mail_mu_);
    mail.swap(mail_);
  }
  for (auto& fn : mail) fn(*this);
}

void Worker::grant(const pool::Waiter& w, pool::Backend* b) {
  if (w.worker == id_) {
    deferred_grants_.emplace_back(w, b);
    return;
  }
  send_msg(w.worker, b->index, pack(Op::kGrant, w.slot, w.gen));
}

void Worker::fail(const pool::Waiter& w, pool::WaitFailure why) {
  if (w.worker == id_) {
    on_wait_failed(w.slot, w.gen, why);
    return;
  }
  send_msg(w.worker, uint32_t(why), pack(Op::kFail, w.slot, w.gen));
}

void Worker::run_deferred() {
  while (!deferred_grants_.empty()) {
    auto grants = std::move(deferred_grants_);
    deferred_grants_.clear();
    for (auto& [w, b] : grants) on_grant(w.slot, w.gen, b->index);
  }
}

void Worker::on_config(std::shared_ptr<const RuntimeConfig> cfg) {
  cfg_ = std::move(cfg);
}

// ---------------------------------------------------------------------------------- accept

void Worker::arm_accept() {
  if (!accepting_ || accept_armed_) return;
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_multishot_accept(sqe, listener_.get(), nullptr, nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
  sqe->user_data = pack(Op::kAccept, 0, 0);
  accept_armed_ = true;
}

void Worker::on_accept(int res, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) accept_armed_ = false;
  if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
    // Out of descriptors (or memory): stop accepting for a moment instead of spinning; the
    // kernel keeps new connections in the listen queue meanwhile. Resumed from the tick.
    if (!accept_starved_logged_) {
      accept_starved_logged_ = true;
      log::warn(
          "worker {}: accept: {} — pausing accepts for 100 ms (raise the open-files "
          "limit, or lower max_client_connections)",
          id_, std::strerror(-res));
    }
    accept_backoff_until_ = monotonic_now() + 100 * kNanosPerMilli;
    if (accept_armed_) {
      io_uring_sqe* sqe = ring_->sqe();
      io_uring_prep_cancel64(sqe, pack(Op::kAccept, 0, 0), 0);
      sqe->user_data = pack(Op::kCancelOp, 0, 0);
    }
    return;
  }
  if (res >= 0) {
    accept_starved_logged_ = false;
    if (!accepting_) {
      ::close(res);
    } else {
      io::tune_stream_socket(res);
      if (!new_client(res)) ::close(res);
    }
  } else if (res != -ECANCELED) {
    log::warn("worker {}: accept: {}", id_, std::strerror(-res));
  }
  if (!accept_armed_ && accepting_ && !accept_backoff_until_) arm_accept();
}

// ---------------------------------------------------------------------------------- clients

Client* Worker::client_at(uint32_t slot, uint32_t gen) {
  if (slot >= slots_used_) return nullptr;
  Client* c = &client_chunks_[slot / kClientChunkSize][slot % kClientChunkSize];
  return c->gen == gen && c->state != ClientState::kFree ? c : nullptr;
}

Client* Worker::new_client(int fd) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    if (slots_used_ >= (1u << 24)) return nullptr;
    if (slots_used_ % kClientChunkSize == 0)
      client_chunks_.push_back(std::make_unique<Client[]>(kClientChunkSize));
    slot = slots_used_++;
  }
  Client* c = &client_chunks_[slot / kClientChunkSize][slot % kClientChunkSize];
  uint32_t gen = c->gen + 1;
  *c = Client{};
  c->slot = slot;
  c->gen = gen;
  c->fd = fd;
  c->startup = std::make_unique<StartupState>();
  stats_.clients.fetch_add(1, std::memory_order_relaxed);
  Nanos now = monotonic_now();
  c->state = ClientState::kFree;  // set_state links it into the startup list
  set_state(c, ClientState::kStartup, now);
  c->deadline = now + cfg_->proxy.startup_timeout;
  arm_client_recv(c);
  if (!enter_preauth(c))
    refuse_preauth(c, control::PreauthRefusal::kPerSourceLimit, pg::sqlstate::kTooManyConnections,
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

void Worker::set_state(Client* c, ClientState s, Nanos now) {
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
  }
  if (res > 0) {
    uint16_t bid = uint16_t(flags >> IORING_CQE_BUFFER_SHIFT);
    bufs_->on_delivered(bid);
    stats_.bytes_from_clients.fetch_add(uint64_t(res), std::memory_order_relaxed);
    if (c->kernel) c->kernel->ep.on_read(uint64_t(res));
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
  if (res == -EAGAIN && c->kernel) {  // in the splice engine: woken for bytes the verdict took
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
  if (c->state != ClientState::kClosing) {
    c->terminate = true;
    close_client(c);
  }
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
  if (c->kernel) {  // kernel data path: the kernel's bytes to this socket go first
    if (c->kernel->lease && !settle_kernel_lease(c)) return;
    if (!fence_open(c) || c->to_client.in_flight() || c->to_client.empty()) return;
  }
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
  if (c->kernel && res > 0) c->kernel->ep.on_written(uint64_t(res));
  if (res < 0) {
    q.clear(*chunks_);
    c->to_client.clear_if_idle(*chunks_);
    if (c->state != ClientState::kClosing) {
      c->terminate = true;
      close_client(c);
    }
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
  if (c->kernel && c->kernel->lease) drop_kernel_lease(c);
  Nanos now = monotonic_now();
  if (c->state == ClientState::kQueued || c->state == ClientState::kWelcome) {
    if (c->gate_waiting) {
      // A slot already handed to us is given back by on_gate_open when it finds us gone.
      if (ctx_.gates.cancel(c->tenant, {id_, c->slot, c->gen})) c->gate_waiting = false;
    } else if (c->pool) {
      // If the pool had already granted us a backend, the grant finds the client gone and
      // returns the backend itself.
      c->pool->cancel_wait(&c->waiter);
    }
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
  if (c->kernel) {
    if (ctx_.splice) (void)datapath::leave(*ctx_.splice, c->kernel->ep);
    c->kernel.reset();
  }
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

// ---------------------------------------------------------------------------------- timers

void Worker::on_tick(Nanos now) {
  if (!fenced_.empty()) retry_fences();
  if (auto free = bufs_->available())
    stats_.recv_buffers_free.store(*free, std::memory_order_relaxed);
  // Startup and auth must finish within startup_timeout.
  while (Client* c = startup_list_.head) {
    if (now < c->deadline) break;
    refuse_preauth(c, control::PreauthRefusal::kStartupTimeout, pg::sqlstate::kProtocolViolation,
                   "startup and authentication did not complete within startup_timeout");
    if (startup_list_.head == c) set_state(c, ClientState::kClosing, now);  // defensive
  }
  // Closing clients that did not read their final error in time: shut the socket, so the
  // sends and recv still in flight complete and the client is freed.
  for (Client* c = closing_list_.head; c && now - c->state_since > kClosingLinger;
       c = c->timer_next)
    ::shutdown(c->fd, SHUT_RDWR);
  // Waiting clients: acquire_timeout.
  while (Client* c = queued_list_.head) {
    if (now < c->deadline) break;
    on_acquire_timeout(c);
    if (queued_list_.head == c) {  // a grant is in flight: it will arrive; stop looking
      c->deadline = now + kTick;
      break;
    }
  }
  if (accept_backoff_until_ && now >= accept_backoff_until_) {
    accept_backoff_until_ = 0;
    arm_accept();
  }
  // Statements waiting for QPS tokens.
  for (Client* c = throttled_list_.head; c;) {
    Client* next = c->timer_next;
    check_throttled(c, now);
    c = next;
  }
  // Leases: throttled statements inside a transaction, and max_transaction_duration.
  for (Client* c = active_list_.head; c;) {
    Client* next = c->timer_next;
    if (c->throttled) check_throttled(c, now);
    if (c->state == ClientState::kActive) check_transaction_duration(c, now);
    if (c->state == ClientState::kActive) check_idle_transaction(c, now);
    c = next;
  }
  if (stopping_) {
    if (drain_deadline_ && now >= drain_deadline_) {
      drain_deadline_passed();
      drain_deadline_ = 0;
    } else {
      for (auto& chunk : client_chunks_)
        for (uint32_t i = 0; i < kClientChunkSize; ++i) {
          Client* c = &chunk[i];
          if (c->state == ClientState::kIdle && c->ran_transaction &&
              now - c->state_since > kDrainIdleGrace)
            drain_if_idle(c);
        }
    }
  }
}

}  // namespace helios::server
