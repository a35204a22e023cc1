#include "datapath/kernel_lease.h"

#include <sys/ioctl.h>

namespace helios::datapath {

Result<uint32_t> readable_bytes(int fd) {
  int n = 0;
  if (ioctl(fd, FIONREAD, &n) != 0) return Error::from_errno("datapath: FIONREAD");
  return uint32_t(n < 0 ? 0 : n);
}

Status join(bpf::SpliceEngine& engine, int fd, splice_role role, SpliceEndpoint& ep) {
  if (ep.joined) return {};
  auto n = readable_bytes(fd);
  if (!n) return n.error();
  if (*n != 0) return Error{EAGAIN, "datapath: socket has " + std::to_string(*n) + " unread bytes"};
  auto s = engine.add(fd, role);
  if (!s) return s.error();
  ep = SpliceEndpoint{*s, 0, 0, true};
  return {};
}

Status leave(bpf::SpliceEngine& engine, SpliceEndpoint& ep) {
  if (!ep.joined) return {};
  ep.joined = false;
  return engine.remove(ep.sock.cookie);
}

Result<KernelLease> KernelLease::start(bpf::SpliceEngine& engine, int client_fd, SpliceEndpoint& c,
                                       int backend_fd, SpliceEndpoint& b,
                                       const bpf::LeaseInfo& info) {
  if (!c.joined || !b.joined) return Error::invalid("datapath: sockets not joined");
  for (int fd : {client_fd, backend_fd}) {
    auto n = readable_bytes(fd);
    if (!n) return n.error();
    if (*n != 0) return Error{EAGAIN, "datapath: unread bytes; relay them first"};
  }
  auto s = engine.splice(c.sock.cookie, b.sock.cookie, info, {c.consumed, b.consumed});
  if (!s) return s.error();
  return KernelLease(engine, c.sock.cookie, b.sock.cookie, info.seq);
}

LeaseResult KernelLease::on_event(const splice_event& ev) {
  LeaseResult r;
  r.outcome = ev.kind == SPLICE_EV_LEASE_ENDED ? LeaseOutcome::kEnded : LeaseOutcome::kHandedBack;
  r.reason = splice_reason(ev.reason);
  r.outstanding = ev.outstanding;
  r.unsynced = ev.unsynced != 0;
  r.tx_status = char(ev.tx_status);
  r.queries = ev.queries;
  r.transactions = ev.transactions;
  return r;
}

Result<LeaseResult> KernelLease::take_back() {
  auto snap = engine_->unsplice(client_cookie_, seq_);
  if (!snap) return snap.error();
  LeaseResult r;
  r.outcome = snap->state == SPLICE_LEASE_ENDED ? LeaseOutcome::kEnded : LeaseOutcome::kHandedBack;
  r.reason = snap->reason;
  r.outstanding = snap->outstanding;
  r.unsynced = snap->unsynced;
  r.tx_status = snap->tx_status;
  return r;
}

Result<Resume> KernelLease::finish() {
  if (auto s = engine_->release(client_cookie_, backend_cookie_); !s) return s.error();
  Resume out;
  // Per direction: if the kernel forwarded it in this lease, the next byte user space reads
  // starts at the recorded position: the hand-back record if an skb already came up, else the
  // position after the last forwarded skb (the next skb will record exactly that). A direction
  // never activated in this lease resumes where the worker's own framer is.
  for (auto [cookie, k] :
       {std::pair{client_cookie_, &out.client}, std::pair{backend_cookie_, &out.backend}}) {
    auto st = engine_->socket_state(cookie);
    if (!st) return st.error();
    if (st->active_seq != seq_) continue;
    *k = SpliceContinuation(st->active ? st->frame : st->handback);
  }
  return out;
}

Result<bool> KernelLease::drained(int fd, const SpliceEndpoint& ep) const {
  return engine_->drained(fd, ep.sock, ep.written);
}

}  // namespace helios::datapath
