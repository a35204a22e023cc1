#include "bpf/net_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>

namespace helios::bpf {

bool IpAddr::is_v4() const {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(bytes, prefix, 12) == 0;
}

Result<IpAddr> parse_ip(const std::string& s) {
  IpAddr a;
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    a.bytes[10] = a.bytes[11] = 0xff;
    std::memcpy(a.bytes + 12, &v4, 4);
    return a;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(a.bytes, &v6, 16);
    return a;
  }
  return Error::invalid("not an IP address: '" + s + "'");
}

namespace {
Result<uint32_t> parse_uint(const std::string& s, uint32_t max, const char* what) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > max)
    return Error::invalid(std::string("bad ") + what + ": '" + s + "'");
  return v;
}
}  // namespace

Result<Endpoint> parse_endpoint(const std::string& s) {
  std::string host, port;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return Error::invalid("expected [IPV6]:PORT, got '" + s + "'");
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos || s.find(':') != colon)
      return Error::invalid("expected ADDR:PORT or [IPV6]:PORT, got '" + s + "'");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  auto a = parse_ip(host);
  if (!a) return a.error();
  auto p = parse_uint(port, 65535, "port");
  if (!p) return p.error();
  if (*p == 0) return Error::invalid("port 0 in '" + s + "'");
  return Endpoint{*a, static_cast<uint16_t>(*p)};
}

Result<edge_cidr_key> parse_cidr(const std::string& s) {
  auto slash = s.find('/');
  auto a = parse_ip(s.substr(0, slash));
  if (!a) return a.error();
  uint32_t max = a->is_v4() ? 32 : 128;
  uint32_t len = max;
  if (slash != std::string::npos) {
    auto l = parse_uint(s.substr(slash + 1), max, "prefix length");
    if (!l) return Error::invalid("bad prefix length in '" + s + "'");
    len = *l;
  }
  edge_cidr_key k{};
  k.prefixlen = a->is_v4() ? len + HELIOS_V4_MAPPED_PREFIX_BITS : len;
  std::memcpy(k.addr, a->bytes, HELIOS_ADDR_LEN);
  for (uint32_t bit = k.prefixlen; bit < 128; bit++) k.addr[bit / 8] &= ~(0x80 >> (bit % 8));
  return k;
}

std::string format_ip(const IpAddr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.is_v4())
    inet_ntop(AF_INET, a.bytes + 12, buf, sizeof(buf));
  else
    inet_ntop(AF_INET6, a.bytes, buf, sizeof(buf));
  return buf;
}

std::string format_endpoint(const Endpoint& e) {
  std::string h = format_ip(e.addr);
  return (e.addr.is_v4() ? h : "[" + h + "]") + ":" + std::to_string(e.port);
}

std::string format_cidr(const edge_cidr_key& k) {
  IpAddr a;
  std::memcpy(a.bytes, k.addr, HELIOS_ADDR_LEN);
  uint32_t len = k.prefixlen;
  if (a.is_v4() && len >= HELIOS_V4_MAPPED_PREFIX_BITS) len -= HELIOS_V4_MAPPED_PREFIX_BITS;
  return format_ip(a) + "/" + std::to_string(len);
}

edge_vip_key vip_key(const Endpoint& e) {
  edge_vip_key k{};
  std::memcpy(k.addr, e.addr.bytes, HELIOS_ADDR_LEN);
  k.port = htons(e.port);
  return k;
}

edge_vip_key vip_address_key(const IpAddr& a) {
  edge_vip_key k{};
  std::memcpy(k.addr, a.bytes, HELIOS_ADDR_LEN);
  return k;
}

std::vector<std::string> split_list(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string::npos) end = s.size();
    std::string part = s.substr(start, end - start);
    auto b = part.find_first_not_of(" \t");
    auto e = part.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(part.substr(b, e - b + 1));
    start = end + 1;
  }
  return out;
}

Result<Endpoint> from_sockaddr(const sockaddr_storage& ss) {
  Endpoint e;
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    e.addr.bytes[10] = e.addr.bytes[11] = 0xff;
    std::memcpy(e.addr.bytes + 12, &in->sin_addr, 4);
    e.port = ntohs(in->sin_port);
    return e;
  }
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    std::memcpy(e.addr.bytes, &in6->sin6_addr, 16);
    e.port = ntohs(in6->sin6_port);
    return e;
  }
  return Error::invalid("not an IPv4/IPv6 socket address");
}

}  // namespace helios::bpf
