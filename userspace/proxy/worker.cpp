#include "proxy/worker.h"

#include "proxy/kernel_path.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cassert>

#include "common/log.h"
#include "io/listener.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "proxy/startup_state.h"

namespace helios::proxy {
namespace {
constexpr Nanos kTick = 20 * kNanosPerMilli;
constexpr uint16_t kBufferGroup = 1;
}  // namespace

Worker::Worker(uint16_t id, SharedContext& ctx) : id_(id), ctx_(ctx) {}

Worker::~Worker() = default;

Status Worker::init(UniqueFd listener) {
  auto ring = io::Ring::create({});
  if (!ring) return ring.error();
  ring_ = std::move(*ring);
  auto bufs = io::BufferRing::create(ring_->raw(), kBufferGroup,
                                     uint32_t(cfg_->proxy.receive_buffers), 16 * 1024);
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
  if (ctx_.splice)
    path_ = std::make_unique<KernelPath>(*this);
  else
    path_ = std::make_unique<UserspacePath>();
  arm_accept();
  path_->start();
  next_tick_ = monotonic_now() + kTick;
  while (true) {
    if (bufs_->publish()) rearm_starved();
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
      path_->on_events();
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

// Buffers came back: receives that ended for lack of them start again.
void Worker::rearm_starved() {
  if (!starved_.empty()) {
    auto starved = std::move(starved_);
    starved_.clear();
    for (Client* c : starved) {
      c->recv_starved = false;
      if (c->state != ClientState::kFree && c->state != ClientState::kClosing) arm_client_recv(c);
    }
  }
  if (!starved_leases_.empty()) {
    auto starved = std::move(starved_leases_);
    starved_leases_.clear();
    for (auto [slot, gen] : starved) {
      Client* c = client_at(slot, gen);
      if (!c || !c->backend_starved) continue;
      c->backend_starved = false;
      if (c->backend) arm_backend_recv(c->backend);
    }
  }
}

// ---------------------------------------------------------------------------------- timers

void Worker::on_tick(Nanos now) {
  path_->on_tick();
  follow_load(now);
  if (auto free = bufs_->available())
    stats_.recv_buffers_free.store(*free, std::memory_order_relaxed);
  stats_.send_copied_bytes.store(chunks_->copied_bytes(), std::memory_order_relaxed);
  // Startup and auth must finish within startup_timeout.
  while (Client* c = startup_list_.head) {
    if (now < c->deadline) break;
    refuse_preauth(c, PreauthRefusal::kStartupTimeout, pg::sqlstate::kProtocolViolation,
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
    if (queued_list_.head == c) {  // a grant is in flight (or it waits for a primary): later
      if (c->deadline <= now) c->deadline = now + kTick;
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
  // Leases: throttled statements inside a transaction, max_transaction_duration,
  // idle_transaction_timeout and query_timeout.
  for (Client* c = active_list_.head; c;) {
    Client* next = c->timer_next;
    if (c->throttled) check_throttled(c, now);
    if (c->state == ClientState::kActive) check_transaction_duration(c, now);
    if (c->state == ClientState::kActive) check_idle_transaction(c, now);
    if (c->state == ClientState::kActive) check_query_timeout(c, now);
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

}  // namespace helios::proxy
