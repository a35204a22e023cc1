// `ip route add local ADDR/32 dev lo` (table local) over rtnetlink: makes the kernel accept
// packets for a VIP as local without assigning the address to an interface, so the sk_lookup
// program can hand the connection to the proxy. Done over netlink rather than by running `ip`:
// no fork from the proxy, exact errors (EEXIST tells us the route was not ours to remove), and
// it works inside whatever network namespace the calling thread is in.
#pragma once

#include "bpf/net_addr.h"
#include "common/result.h"

namespace helios::bpf {

// Adds the route. Returns true if it was created, false if it already existed.
Result<bool> add_local_route(const IpAddr& addr, int ifindex);
// Removes it; ok if it is already gone.
Status del_local_route(const IpAddr& addr, int ifindex);

}  // namespace helios::bpf
