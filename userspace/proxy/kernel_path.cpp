// The kernel data path (kernel_path.h; docs/datapath.md, "The proxy's kernel leases").
//
// The worker keeps the client direction: every client message is read, inspected, counted,
// admitted by the QPS bucket and sent to the backend by the worker, exactly as on the user-space
// path (the lease is spliced with SPLICE_F_CLIENT_UP, so client bytes always come up). What the
// kernel carries is the backend's replies: right before the worker sends a request whose replies
// it has no reason to look at, it splices the lease; the verdict forwards the replies to the
// client socket, counts the ReadyForQuery messages and, in transaction mode, ends the lease at
// the ReadyForQuery 'I' that answers the last request. The worker learns that from its event
// ring, adopts the kernel's counts and returns the backend to the pool.
//
// Whenever the worker has to act while a lease is in the kernel — the client sent more, the
// lease must be cut short (timeout, drain, close) — it takes the lease back first
// (settle), so the worker and the kernel never both own the reply stream.
#include <poll.h>

#include <cerrno>

#include "common/log.h"
#include "datapath/auto_rules.h"
#include "pg/protocol.h"
#include "pg/sqlstate.h"
#include "proxy/kernel_path.h"
#include "proxy/worker.h"
#include "tenant/tenant_state.h"

namespace helios::proxy {

namespace {

datapath::DataPathSetting setting_of(config::DataPathMode m) {
  switch (m) {
    case config::DataPathMode::kUserspace:
      return datapath::DataPathSetting::kUserspace;
    case config::DataPathMode::kKernel:
      return datapath::DataPathSetting::kKernel;
    case config::DataPathMode::kAuto:
      return datapath::DataPathSetting::kAuto;
  }
  return datapath::DataPathSetting::kUserspace;
}

splice_mode mode_of(config::PoolMode m) {
  switch (m) {
    case config::PoolMode::kSession:
      return SPLICE_MODE_SESSION;
    case config::PoolMode::kStatement:
      return SPLICE_MODE_STATEMENT;
    case config::PoolMode::kTransaction:
      return SPLICE_MODE_TRANSACTION;
  }
  return SPLICE_MODE_TRANSACTION;
}

}  // namespace

bool KernelPath::kernel_path_for(const Client* c) const {
  // The kernel counts per tenant in arrays of HELIOS_SOCK_MAX_TENANTS slots; a tenant past them
  // stays in user space, where it is counted exactly.
  if (!c->tenant || c->tenant->index() >= HELIOS_SOCK_MAX_TENANTS) return false;
  config::DataPathMode m = w_.cfg_->proxy.data_path;
  if (w_.ctx_.quotas_enabled.load(std::memory_order_relaxed)) {
    int8_t o = c->tenant->data_path_override();
    if (o >= 0) m = config::DataPathMode(o);
  }
  datapath::LeaseFacts f;
  f.setting = setting_of(m);
  f.engine_available = w_.ctx_.splice != nullptr;
  f.mode = mode_of(c->mode);
  // The worker inspects every statement itself (the client direction stays in user space), so
  // nothing the kernel forwards needs inspection.
  f.needs_sql_inspection = false;
  return datapath::choose_data_path(f, datapath::AutoRules{}).kernel;
}

// Called right before the worker sends queued requests to the backend. Splices when the replies
// the client is owed are plain (forwarded as they come) and both streams are at a boundary.
void KernelPath::before_backend_send(Client* c, pool::Backend* b) {
  if (!c->kernel || !w_.ctx_.splice || w_.stopping_ || c->tls || b->tls) return;
  if (holds(c)) return;
  // Until the lease's first reply arrives, the worker reads it: a backend that ended before
  // answering hands the transaction to another one (lease_retry.h). The rest of a long reply
  // can still go through the kernel (on_backend_recv splices after that first read).
  if (c->retry.armed) return;
  if (c->state != ClientState::kActive || c->outstanding == 0 || c->wire.unsynced || c->pinned ||
      c->duration_cancelled || b->swallow_rfq > 0 || b->recv_paused)
    return;
  BackendKernel* bk = kernel_of(b);
  if (!bk || !b->framer.at_boundary() || !bk->resume.done()) return;
  if (!c->to_client.empty() || c->to_client.in_flight()) return;
  if (c->session && c->session->has_staged()) return;  // their commit needs the replies
  // The lease ends with a session-state probe, which the worker must send and read.
  if (c->session && (c->session->probe_wanted || c->session->probe_inflight ||
                     c->session->restore_wanted || c->session->restore_inflight))
    return;
  if (!c->tracker.all_forwarded()) return;
  if (!kernel_path_for(c)) return;

  ClientKernel& k = *c->kernel;
  if (!k.ep.joined || !bk->ep.joined || !c->framer.at_boundary()) return;
  bpf::SpliceEngine& eng = *w_.ctx_.splice;
  bpf::LeaseInfo li;
  li.seq = ++k.seq;
  li.tenant_id = c->tenant->index();  // < HELIOS_SOCK_MAX_TENANTS (kernel_path_for)
  li.mode = mode_of(c->mode);
  li.worker = w_.id_;
  li.flags = SPLICE_F_CLIENT_UP | SPLICE_F_PARAMETER_STATUS;
  li.outstanding = c->outstanding;
  li.unsynced = false;
  li.tx_status = b->tx_status;
  auto lease = datapath::KernelLease::start(eng, c->fd, k.ep, b->fd.get(), bk->ep, li);
  if (!lease) {
    log::debug("worker {}: lease stays in user space: {}", w_.id_, lease.error().message);
    return;
  }
  k.lease.emplace(std::move(*lease));
  c->retry.disarm();  // its replies go to the client without the worker seeing them
  k.spliced_outstanding = c->outstanding;
  spliced_[k.ep.sock.cookie] = {c->slot, c->gen};
}

void KernelPath::lease_started(Client* c, pool::Backend* b) {
  if (!w_.ctx_.splice || c->tls || b->tls || !kernel_path_for(c)) return;
  bpf::SpliceEngine& eng = *w_.ctx_.splice;
  // A backend fresh from the pool has nothing to say; a client that just sent its request
  // waits for the reply. Both are checked (FIONREAD) before they join.
  if (!b->path) b->path = std::make_unique<BackendKernel>(eng);
  BackendKernel& bk = *kernel_of(b);
  if (!bk.ep.joined) {
    if (auto s = datapath::join(eng, b->fd.get(), SPLICE_ROLE_BACKEND, bk.ep); !s) {
      log::debug("worker {}: backend pid {} stays in user space: {}", w_.id_, b->process_id,
                 s.error().message);
      return;
    }
  }
  if (!c->kernel) c->kernel = std::make_unique<ClientKernel>();
  if (!c->kernel->ep.joined) {
    if (auto s = datapath::join(eng, c->fd, SPLICE_ROLE_CLIENT, c->kernel->ep); !s)
      log::debug("worker {}: client stays in user space: {}", w_.id_, s.error().message);
  }
}

void KernelPath::arm_events() {
  if (!w_.ctx_.splice || poll_armed_) return;
  io_uring_sqe* sqe = w_.ring_->sqe();
  io_uring_prep_poll_add(sqe, w_.ctx_.splice->event_ring(w_.id_).fd(), POLLIN);
  sqe->user_data = pack(Op::kSpliceEvents, 0, 0);
  poll_armed_ = true;
}

void KernelPath::on_events() {
  poll_armed_ = false;
  consume_events();
  arm_events();
}

void KernelPath::consume_events() {
  if (!w_.ctx_.splice || spliced_.empty()) return;
  std::vector<splice_event> events;
  auto n = w_.ctx_.splice->event_ring(w_.id_).consume(
      [&](const splice_event& ev) { events.push_back(ev); });
  if (!n) log::warn("worker {}: splice events: {}", w_.id_, n.error().message);
  for (const splice_event& ev : events) {
    auto it = spliced_.find(ev.lease_id);
    if (it == spliced_.end()) continue;  // taken back already
    Client* c = w_.client_at(it->second.first, it->second.second);
    if (!c || !c->kernel || !c->kernel->lease || !c->kernel->lease->matches(ev)) continue;
    leave_kernel(c, c->kernel->lease->on_event(ev));
  }
}

bool KernelPath::adopt_lease(Client* c, const datapath::LeaseResult& r) {
  ClientKernel& k = *c->kernel;
  spliced_.erase(k.ep.sock.cookie);
  auto resume = k.lease->finish();
  k.lease.reset();
  k.fence = true;  // what the kernel redirected to the client must leave before our next write
  pool::Backend* b = c->backend;
  if (!resume) {
    log::error("worker {}: releasing a kernel lease: {}", w_.id_, resume.error().message);
    if (b) b->broken = true;
    return false;
  }
  if (b && b->path)
    kernel_of(b)->resume = resume->backend;  // the client direction never left user space
  // Requests the kernel saw answered: their tracker entries go, and each counts as a query.
  uint32_t answered =
      k.spliced_outstanding >= r.outstanding ? k.spliced_outstanding - r.outstanding : 0;
  c->tracker.drop_answered(w_.track_pool_, answered);
  c->outstanding = r.outstanding;
  if (b) b->tx_status = r.tx_status;
  w_.note_replies(c, answered, r.tx_status);
  if (r.outcome == datapath::LeaseOutcome::kEnded)
    c->tracker.clear(w_.track_pool_);
  else if (c->outstanding > 0)  // the kernel may have forwarded part of the next reply
    c->tracker.merge_head_request(w_.track_pool_);
  return true;
}

void KernelPath::drop_lease(Client* c) {
  auto r = c->kernel->lease->take_back();
  if (!r || !adopt_lease(c, *r)) {
    spliced_.erase(c->kernel->ep.sock.cookie);
    c->kernel->lease.reset();
    if (c->backend) c->backend->broken = true;  // detach_backend_on_close discards it
  }
}

void KernelPath::leave_kernel(Client* c, const datapath::LeaseResult& r) {
  if (!adopt_lease(c, r)) {
    w_.send_error(c, true, pg::sqlstate::kInternalError, "the proxy lost track of a kernel lease");
    return;
  }
  if (r.outcome == datapath::LeaseOutcome::kEnded) {
    if (c->backend && c->state == ClientState::kActive) {
      w_.end_lease(c);
      if (w_.stopping_) w_.drain_if_idle(c);
    }
    return;
  }
  // Handed back: the user-space relay goes on from where the kernel stopped.
  log::debug("worker {}: kernel lease handed back ({})", w_.id_, bpf::splice_reason_name(r.reason));
}

bool KernelPath::holds(const Client* c) const {
  return c->kernel && c->kernel->lease;
}

bool KernelPath::settle(Client* c) {
  if (!holds(c)) return true;
  consume_events();
  if (!holds(c)) return true;  // an event may have ended it
  auto r = c->kernel->lease->take_back();
  if (!r) {
    log::error("worker {}: taking a kernel lease back: {}", w_.id_, r.error().message);
    spliced_.erase(c->kernel->ep.sock.cookie);
    c->kernel->lease.reset();
    if (c->backend) c->backend->broken = true;
    w_.send_error(c, true, pg::sqlstate::kInternalError, "the proxy lost track of a kernel lease");
    return false;
  }
  leave_kernel(c, *r);
  return c->state != ClientState::kClosing && c->state != ClientState::kFree;
}

uint32_t KernelPath::resume_backend(pool::Backend* b, Client* c, int32_t bid, const uint8_t* data,
                                    uint32_t len, bool* ready) {
  BackendKernel* bk = kernel_of(b);
  if (!bk || bk->resume.done()) return 0;
  datapath::SpliceContinuation& resume = bk->resume;
  uint32_t raw = resume.feed(data, len);
  if (raw && c) {
    if (bid != kNoBuffer)
      c->to_client.push_borrowed(*w_.chunks_, uint16_t(bid), data, raw);
    else
      c->to_client.push_owned(*w_.chunks_,
                              std::string_view(reinterpret_cast<const char*>(data), raw));
  }
  // A ReadyForQuery whose header the kernel forwarded but whose status it never saw: the kernel
  // did not count it, so it is counted here like any other.
  if (resume.done() && resume.type() == pg::be::kReadyForQuery && resume.has_first_body_byte()) {
    b->tx_status = char(resume.first_body_byte());
    if (c) {
      (void)c->tracker.on_backend_message(w_.track_pool_, pg::be::kReadyForQuery);
      if (c->outstanding > 0) --c->outstanding;
      w_.note_replies(c, 1, b->tx_status);
      *ready = true;
    }
  }
  return raw;
}

bool KernelPath::reply_cut(const pool::Backend* b) const {
  const auto* bk = static_cast<const BackendKernel*>(b->path.get());
  return bk && !bk->resume.done();
}

bool KernelPath::fence_open(Client* c) {
  ClientKernel& k = *c->kernel;
  if (!k.fence) return true;
  auto ok = w_.ctx_.splice->drained(c->fd, k.ep.sock, k.ep.written);
  if (!ok || *ok) {  // an error here means the socket is gone: nothing to order against
    k.fence = false;
    return true;
  }
  fenced_.emplace_back(c->slot, c->gen);
  return false;
}

void KernelPath::on_tick() {
  auto waiting = std::move(fenced_);
  fenced_.clear();
  for (auto [slot, gen] : waiting)
    if (Client* c = w_.client_at(slot, gen)) w_.flush_client(c);
}

void KernelPath::take_back_all() {
  std::vector<std::pair<uint32_t, uint32_t>> leases;
  for (const auto& [cookie, sg] : spliced_) leases.push_back(sg);
  for (auto [slot, gen] : leases)
    if (Client* c = w_.client_at(slot, gen); c && settle(c)) w_.drain_if_idle(c);
}

void KernelPath::client_read(Client* c, uint32_t n) {
  if (c->kernel) c->kernel->ep.on_read(n);
}

void KernelPath::client_written(Client* c, uint32_t n) {
  if (c->kernel) c->kernel->ep.on_written(n);
}

// A client socket in the splice engine: a recv woken for bytes the verdict took completes empty.
bool KernelPath::recv_preempted(const Client* c, int res) const {
  return res == -EAGAIN && c->kernel;
}

// The kernel's bytes to this socket go first.
bool KernelPath::client_writable(Client* c) {
  if (!c->kernel) return true;
  if (!settle(c)) return false;
  return fence_open(c);
}

void KernelPath::client_closing(Client* c) {
  if (holds(c)) drop_lease(c);
}

void KernelPath::client_freed(Client* c) {
  if (!c->kernel) return;
  if (w_.ctx_.splice) (void)datapath::leave(*w_.ctx_.splice, c->kernel->ep);
  c->kernel.reset();
}

// A client whose socket joined the splice engine stays on its worker. Taking its socket out of
// the sockmap at rest would not be safe: bytes the client sends meanwhile (its next statement)
// that the verdict already passed sit in the psock's ingress queue, which the kernel purges with
// the psock; the statement would be lost. (Measured: a client moved that way under load hung.)
bool KernelPath::may_move(const Client* c) const { return !c->kernel; }

void KernelPath::backend_read(pool::Backend* b, int res) {
  BackendKernel* bk = kernel_of(b);
  if (!bk || !bk->ep.joined || res == -EAGAIN || res == -ENOBUFS || res == -ECANCELED) return;
  if (res > 0) bk->ep.on_read(uint64_t(res));
  // Bytes (or the end of the stream) from a backend whose replies the kernel was carrying: the
  // kernel handed the lease back, ended it, or the server went away. Settle the lease before
  // they are handled. The recv still counts as in flight, so an ended lease's backend is not
  // released under our feet.
  if (b->state == pool::BackendState::kLeased && b->finish == pool::Backend::Finish::kNone)
    if (Client* owner = w_.client_at(b->client_slot, b->client_gen);
        owner && owner->backend == b && holds(owner))
      (void)settle(owner);
}

}  // namespace helios::proxy
