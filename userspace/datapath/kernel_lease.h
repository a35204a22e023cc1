// The worker's side of the hand-off protocol (docs/datapath.md, "Hand-off protocol"): what it
// keeps per socket, how it starts a spliced lease, how it learns the lease left the kernel, and
// how it resumes the user-space path at the right byte.
//
// Per socket (Client / Backend) the worker keeps a SpliceEndpoint and adds every byte it reads
// (consumed) and every byte whose send completed (written). The kernel only forwards a
// direction whose passed-up bytes user space has consumed exactly, so a stale count is safe: the
// lease is handed back at once (reason not_caught_up) and the worker simply relays.
//
//   KernelLease::start(engine, c_fd, c->splice, b_fd, b->splice, info)   // preconditions checked
//   ring event for this lease -> lease.on_event(ev)   or   lease.take_back()
//   auto r = lease.finish();   // sockets back to user mode; r.client/r.backend continuations
//   before the first user-space write to a socket: lease.drained(fd, endpoint) must be true
#pragma once

#include <cstdint>

#include "bpf/sockmap_splice.h"
#include "common/result.h"
#include "datapath/splice_continuation.h"

namespace helios::datapath {

struct SpliceEndpoint {
  bpf::SpliceSocket sock{};
  uint64_t consumed = 0;  // bytes read from the socket since join()
  uint64_t written = 0;   // bytes user space wrote (send completed) since join()
  bool joined = false;
  void on_read(uint64_t n) { consumed += n; }
  void on_written(uint64_t n) { written += n; }
};

// The socket joins the engine (once per connection: a client stays in for its whole life, a
// backend while it is pooled). Precondition: nothing unread (FIONREAD 0) and no read armed that
// could race the join; checked where it can be.
Status join(bpf::SpliceEngine& engine, int fd, splice_role role, SpliceEndpoint& ep);
Status leave(bpf::SpliceEngine& engine, SpliceEndpoint& ep);

// Bytes readable on fd right now; on this kernel FIONREAD includes what the verdict passed up.
Result<uint32_t> readable_bytes(int fd);

enum class LeaseOutcome : uint8_t {
  kActive,      // still in the kernel
  kEnded,       // ended in the kernel at ReadyForQuery 'I' (transaction/statement mode)
  kHandedBack,  // user space owns the lease again (reason says why)
};

struct LeaseResult {
  LeaseOutcome outcome = LeaseOutcome::kActive;
  splice_reason reason = SPLICE_R_NONE;
  uint32_t outstanding = 0;  // ReadyForQuery the client still expects (adopt it)
  bool unsynced = false;
  char tx_status = 'I';
  uint64_t queries = 0;  // counted by the kernel for this lease (already in splice_tenants)
  uint64_t transactions = 0;
};

// How each direction resumes in user space after the lease left the kernel.
struct Resume {
  SpliceContinuation client;   // first bytes read from the client socket
  SpliceContinuation backend;  // first bytes read from the backend socket
};

class KernelLease {
 public:
  // Preconditions (else an error and nothing changes): both endpoints joined; both sockets have
  // nothing unread; the worker's framers are at a message boundary, its send queues to both
  // sockets are empty (every send completed) and it expects no proxy-internal replies. The
  // last two are the caller's to check; `info.outstanding` is what the client still expects.
  static Result<KernelLease> start(bpf::SpliceEngine& engine, int client_fd, SpliceEndpoint& c,
                                   int backend_fd, SpliceEndpoint& b, const bpf::LeaseInfo& info);

  bool matches(const splice_event& ev) const {
    return ev.lease_id == client_cookie_ && ev.lease_seq == seq_;
  }
  // A ring event of this lease (ended / handed back / framing error).
  LeaseResult on_event(const splice_event& ev);
  // Takes the lease back now (client gone, cancel, drain, timeout). If the kernel already ended
  // or handed it back, says so (the event is then in the ring too: ignore it).
  Result<LeaseResult> take_back();
  // After the lease left the kernel: both sockets back to "everything to user space" and where
  // each stream resumes. Call once.
  Result<Resume> finish();
  // The fence: true once every byte the kernel redirected into fd went into its TCP send queue,
  // so a user-space write lands after them. Check before the first write after finish().
  Result<bool> drained(int fd, const SpliceEndpoint& ep) const;

  uint64_t client_cookie() const { return client_cookie_; }
  uint64_t backend_cookie() const { return backend_cookie_; }
  uint32_t seq() const { return seq_; }

 private:
  KernelLease(bpf::SpliceEngine& e, uint64_t c, uint64_t b, uint32_t seq)
      : engine_(&e), client_cookie_(c), backend_cookie_(b), seq_(seq) {}
  bpf::SpliceEngine* engine_;
  uint64_t client_cookie_, backend_cookie_;
  uint32_t seq_;
};

}  // namespace helios::datapath
