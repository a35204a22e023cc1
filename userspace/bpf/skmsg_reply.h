// The sk_msg reply path (bpf/skmsg_reply.bpf.c, issue 18 item 3) as one RAII object: a
// COMPONENT for bench/kernel/ and tests/bpf/, not a data path of the proxy.
//
// attach() loads the programs, attaches the sk_msg program to skmsg_socks and the sockops
// program to a cgroup v2 (default: the whole hierarchy, where a local PostgreSQL runs). From then
// on every connection a local PostgreSQL accepts on `db_port` puts PostgreSQL's socket into
// skmsg_socks. A relay that owns the client socket and the backend connection then:
//   route(backend_fd, slot, client_fd)  before the first reply it wants redirected
//   arm(slot)                           before it forwards each request
// and PostgreSQL's sendmsg redirects the replies to the client socket's egress until the
// ReadyForQuery 'I' (slot's `ended` grows, the slot is idle again: later replies reach the
// relay over TCP). A redirect that fails part-way (client send buffer full: the kernel drops
// the rest and PostgreSQL sends it again) is seen by a raw tracepoint after each sendmsg
// (sock_send_length), so the framing does not count those bytes twice. Nothing is pinned.
// Destruction detaches the sockops program and the tracepoint, then sk_msg.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "helios/bpf_abi.h"

namespace helios::bpf {

struct SkmsgReplySpec {
  uint16_t db_port = 0;  // PostgreSQL's listen port on this host
  std::string cgroup;    // cgroup v2 containing PostgreSQL; "" = the v2 mount (everything)
};

class SkmsgReply {
 public:
  SkmsgReply(SkmsgReply&&) noexcept;
  SkmsgReply& operator=(SkmsgReply&&) noexcept;
  ~SkmsgReply();

  // is_missing_feature() on the error when the kernel or the process cannot do it.
  static Result<SkmsgReply> attach(const SkmsgReplySpec& spec);

  // backend_fd: the relay's connected socket to the local PostgreSQL (PostgreSQL's end, its
  // 4-tuple reversed, must be in skmsg_socks: established after attach()). Resets the slot to
  // idle at a message boundary and puts client_fd into skmsg_targets[slot].
  Status route(int backend_fd, uint32_t slot, int client_fd);
  // Removes the route and the target (the slot stays as it is, for its counters).
  Status unroute(int backend_fd, uint32_t slot);
  // PostgreSQL's end of backend_fd is in skmsg_socks.
  Result<bool> backend_in_map(int backend_fd) const;

  // Arms the slot (no syscall: the slots are mmapped). The stream must be at a message
  // boundary, which it is after the ReadyForQuery that ended the previous lease.
  void arm(uint32_t slot);
  bool armed(uint32_t slot) const;
  // A copy of the slot (racy read of a live slot: for counters and tests).
  skmsg_lease lease(uint32_t slot) const;

  Result<skmsg_stats> stats() const;  // summed over CPUs

 private:
  struct Loaded;
  SkmsgReply();
  void detach();
  std::unique_ptr<Loaded> loaded_;
};

// The 4-tuple key of the socket at the other end of a connected local TCP socket.
Result<sock_tuple_key> peer_tuple_key(int fd);

}  // namespace helios::bpf
