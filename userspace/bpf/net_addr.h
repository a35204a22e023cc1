// Parsing and printing of the address forms the edge guard uses, into the ABI's 16-byte
// IPv4-mapped representation: "10.0.0.1:5432", "[fd00::1]:5432", "10.1.0.0/16", "fd00::/64".
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "helios/bpf_abi.h"

namespace helios::bpf {

struct IpAddr {
  uint8_t bytes[HELIOS_ADDR_LEN] = {};  // network order; IPv4 as ::ffff:a.b.c.d
  bool is_v4() const;
  bool operator==(const IpAddr&) const = default;
};

struct Endpoint {
  IpAddr addr;
  uint16_t port = 0;  // host order
};

Result<IpAddr> parse_ip(const std::string& s);
// An AF_INET or AF_INET6 socket address (getsockname, getaddrinfo) as an Endpoint.
Result<Endpoint> from_sockaddr(const sockaddr_storage& ss);
// "ADDR:PORT" or "[V6ADDR]:PORT".
Result<Endpoint> parse_endpoint(const std::string& s);
// "ADDR/LEN" or a bare address (host prefix). Host bits are cleared.
Result<edge_cidr_key> parse_cidr(const std::string& s);

std::string format_ip(const IpAddr& a);
std::string format_endpoint(const Endpoint& e);
std::string format_cidr(const edge_cidr_key& k);

edge_vip_key vip_key(const Endpoint& e);
edge_vip_key vip_address_key(const IpAddr& a);  // port 0: "this address is a VIP address"

// Splits "a,b, c" into trimmed non-empty parts.
std::vector<std::string> split_list(const std::string& s, char sep = ',');

}  // namespace helios::bpf
