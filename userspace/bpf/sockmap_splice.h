// Lease splicing engine: loads bpf/sockmap_splice.bpf.c once per proxy and lets the data path
// hand a client/backend pair to the kernel for the length of a lease.
//
//   auto eng = SpliceEngine::load({.instance = "default", .workers = 4});
//   auto c = eng->add(client_fd, SPLICE_ROLE_CLIENT);     // once per connection (or per lease)
//   auto b = eng->add(backend_fd, SPLICE_ROLE_BACKEND);
//   eng->splice(c->cookie, b->cookie, lease, {client_consumed, backend_consumed});
//   ... the kernel forwards; the worker polls eng->event_ring(worker).fd() ...
//   on SPLICE_EV_LEASE_ENDED / HANDED_BACK, or eng->unsplice(c->cookie, seq) to take it back:
//   eng->release(c->cookie, b->cookie)  -> both sockets back to "user space gets every byte".
//
// The rules the caller must follow (what must be true before splice(), how bytes that race a
// decision are handled, how to order its own writes after a hand-back) are in docs/datapath.md,
// "Hand-off protocol". Every method is a few bpf(2) calls, safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bpf/splice_events.h"
#include "common/result.h"
#include "helios/bpf_abi.h"

namespace helios::bpf {

struct SpliceOptions {
  std::string instance = "default";  // pins under /sys/fs/bpf/helios/<instance>/
  uint16_t workers = 1;              // one event ring per worker (<= HELIOS_SOCK_MAX_WORKERS)
  uint32_t max_sockets = HELIOS_SOCK_SPLICE_MAX_SOCKETS;
  bool pin = true;  // pin the maps for bpftool (not needed to work)
};

// A socket put into the engine.
struct SpliceSocket {
  uint64_t cookie = 0;       // SO_COOKIE: the key in every map
  uint64_t tcp_written = 0;  // bytes ever written into the socket when it was added (fence)
};

// What the kernel needs to know about a lease, as user space sees it when it splices.
struct LeaseInfo {
  uint32_t seq = 0;        // unique per lease of this client (e.g. the backend's lease_seq)
  uint32_t tenant_id = 0;  // < HELIOS_SOCK_MAX_TENANTS
  splice_mode mode = SPLICE_MODE_TRANSACTION;
  uint16_t worker = 0;       // whose event ring gets this lease's events
  uint32_t flags = 0;        // enum splice_ctl_flags
  uint32_t outstanding = 0;  // ReadyForQuery the client still expects
  bool unsynced = false;     // extended-protocol messages sent since the last Sync
  char tx_status = 'I';
};

// Bytes user space has consumed (read) from each socket since add(): the kernel activates a
// direction only when it has passed up exactly that many (nothing raced to user space).
struct Consumed {
  uint64_t client = 0;
  uint64_t backend = 0;
};

// The lease after an atomic operation on it (unsplice / read).
struct LeaseSnapshot {
  splice_lease_state prev_state{};
  splice_lease_state state{};
  splice_reason reason = SPLICE_R_NONE;
  uint32_t outstanding = 0;
  bool unsynced = false;
  bool client_mid = false;
  char tx_status = 'I';
};

// Where the bytes passed up after kernel forwarding start, in message terms.
struct Handback {
  bool happened = false;
  uint64_t at = 0;       // passed-up byte offset (count since add()) where it starts
  splice_frame frame{};  // framing position there
  splice_reason reason = SPLICE_R_NONE;
};

class SpliceEngine {
 public:
  SpliceEngine();  // empty: every call fails until assigned from load()
  SpliceEngine(SpliceEngine&&) noexcept;
  SpliceEngine& operator=(SpliceEngine&&) noexcept;
  ~SpliceEngine();

  // Probes (is_missing_feature() on the error: run the user-space path), loads, attaches the
  // verdict to the SOCKHASH, creates the event rings, maps the QPS tokens.
  static Result<SpliceEngine> load(const SpliceOptions& options);

  // A connected TCP socket joins the engine: from now on its verdict sees every skb (and passes
  // them all up while no lease is spliced). Precondition: its receive queue is empty (FIONREAD
  // 0) and nothing can arrive until this returns; see docs/datapath.md.
  Result<SpliceSocket> add(int fd, splice_role role);
  // Leaves the engine (the socket must not be in an active lease). Unread bytes stay readable.
  Status remove(uint64_t cookie);

  // Starts a lease in the kernel. The client's lease id is its cookie.
  Status splice(uint64_t client, uint64_t backend, const LeaseInfo& lease,
                const Consumed& consumed);
  // Takes an ACTIVE lease back atomically (reason SPLICE_R_USER); reports the final state. If
  // the lease already left ACTIVE (ended or handed back by the kernel) it says so.
  Result<LeaseSnapshot> unsplice(uint64_t client, uint32_t seq);
  Result<LeaseSnapshot> read_lease(uint64_t client, uint32_t seq) const;
  // After the lease left ACTIVE: both sockets back to "everything to user space", lease deleted.
  Status release(uint64_t client, uint64_t backend);

  Result<splice_sock_state> socket_state(uint64_t cookie) const;
  Result<Handback> handback(uint64_t cookie) const;
  // True once every byte the kernel redirected into `fd` has entered its TCP send queue, so a
  // write from user space lands after them. user_written: bytes user space wrote since add().
  Result<bool> drained(int fd, const SpliceSocket& s, uint64_t user_written) const;

  // Per-tenant kernel counters (summed over CPUs) and QPS tokens.
  Result<splice_tenant_counters> tenant_counters(uint32_t tenant) const;
  Status zero_tenant(uint32_t tenant);
  void add_qps_tokens(uint32_t tenant, int64_t n);  // negative takes tokens back
  int64_t qps_tokens(uint32_t tenant) const;
  uint64_t qps_taken(uint32_t tenant) const;

  Result<splice_stats> stats() const;
  // The event ring of a worker (poll its fd for POLLIN, then consume()).
  SpliceEventRing& event_ring(uint16_t worker);
  uint16_t workers() const;
  const std::string& pin_path() const { return pin_path_; }

 private:
  struct Loaded;
  void teardown();
  Status write_ctl(uint64_t cookie, const splice_ctl& c);

  std::unique_ptr<Loaded> loaded_;
  std::string instance_, pin_path_;
};

// Bytes ever written into a TCP socket by anyone (user space or a redirect), from TCP_INFO:
// bytes_sent - bytes_retrans + notsent_bytes.
Result<uint64_t> tcp_bytes_written(int fd);
// SO_COOKIE of a socket.
Result<uint64_t> socket_cookie(int fd);

const char* splice_reason_name(uint32_t reason);
const char* splice_event_name(uint32_t kind);

}  // namespace helios::bpf
