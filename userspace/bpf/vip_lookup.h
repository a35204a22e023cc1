// Transparent VIP: connections to VIP:port reach the proxy's listening socket, with no iptables
// and no listener bound to the VIP. Two pieces, both undone on destruction:
//   - the route `local VIP/32 dev lo` (table local), so the kernel accepts the VIP as local;
//   - bpf/vip_lookup.bpf.c, an sk_lookup program on the calling thread's network namespace that
//     assigns those connections to the listener (kept in a one-slot SOCKMAP).
// getsockname() on an accepted connection returns VIP:port. If the listener is part of a
// SO_REUSEPORT group, the kernel still balances across the group.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "bpf/net_addr.h"
#include "bpf/pin_dir.h"
#include "common/result.h"
#include "helios/bpf_abi.h"

namespace helios::bpf {

class VipSteering {
 public:
  VipSteering(VipSteering&&) noexcept;
  VipSteering& operator=(VipSteering&&) noexcept;
  ~VipSteering();

  // vip: an IPv4 or IPv6 address (no port); listener_fd: a listening TCP socket of the same
  // family. Pins vip_stats at /sys/fs/bpf/helios/<instance>/vip_stats for bpftool.
  static Result<VipSteering> attach(std::string vip, uint16_t port, int listener_fd,
                                    std::string instance);

  Result<vip_lookup_stats> stats() const;
  bool created_route() const { return route_created_; }

 private:
  struct Loaded;
  VipSteering();
  void teardown();

  std::unique_ptr<Loaded> loaded_;
  std::string instance_;
  IpAddr vip_;
  int lo_ifindex_ = 0;
  bool route_created_ = false;
};

}  // namespace helios::bpf
