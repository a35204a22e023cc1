// Same-host bypass as one RAII object: bpf/sockops_bypass.bpf.c's sockops program attached to a
// cgroup v2 and its sk_msg program attached to the bypass SOCKHASH. While it lives, every TCP
// connection established inside the cgroup whose local or remote endpoint is listed in the spec
// (and whose peer is on this host) sends straight into its peer's receive queue, skipping the
// loopback TCP stack. It is transparent to the sockets' owners: the proxy keeps using io_uring
// send/recv. Other sockets are never added to the map.
//
// Maps are pinned under /sys/fs/bpf/helios/<instance>/ (bypass_socks, bypass_endpoints,
// bypass_stats) for bpftool. Destruction detaches the sockops program first (no new sockets),
// then the sk_msg program, then unpins; connections in the map fall back to plain TCP.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bpf/bypass_spec.h"
#include "common/result.h"
#include "helios/bpf_abi.h"

namespace helios::bpf {

// Whether the kernel's sk_msg ingress redirect holds a sender back when the receiving socket does
// not read, as TCP's window does. Linux (6.18 measured, tests/bpf/bypass_test.cpp "a receiver that
// does not read does not hold back its sender") does not: bpf_tcp_ingress charges the receiver's
// memory against the protocol-wide limit only, never its receive buffer, so 512 MB went into a
// socket that read nothing (4 MB over TCP). proxy/bypass_policy.h keeps "auto" off for it.
inline constexpr bool kRedirectHasFlowControl = false;

class SameHostBypass {
 public:
  SameHostBypass(SameHostBypass&&) noexcept;
  SameHostBypass& operator=(SameHostBypass&&) noexcept;
  ~SameHostBypass();

  // Probes the kernel (is_missing_feature() on the error: run without the bypass), loads, pins,
  // writes the endpoints and attaches. Connections established before attach are not bypassed.
  static Result<SameHostBypass> attach(const BypassSpec& spec);

  // Hot reload: replaces the endpoint list. Sockets already in the map stay bypassed.
  Status set_endpoints(const std::vector<BypassEndpoint>& endpoints);

  Result<sock_bypass_stats> stats() const;  // summed over CPUs
  Result<size_t> socket_count() const;      // sockets in bypass_socks now
  Result<bool> is_bypassed(int fd) const;   // this connected socket is in bypass_socks

  const std::string& cgroup() const { return cgroup_; }
  const std::string& pin_path() const { return pin_path_; }
  const std::string& instance() const { return instance_; }

  // Detaches and unpins now (the destructor does the same).
  void detach();

 private:
  struct Loaded;
  SameHostBypass();

  std::unique_ptr<Loaded> loaded_;
  std::string instance_, cgroup_, pin_path_;
};

}  // namespace helios::bpf
