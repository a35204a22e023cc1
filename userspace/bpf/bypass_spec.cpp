#include "bpf/bypass_spec.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "bpf/feature_probe.h"
#include "control/config.h"

namespace helios::bpf {

namespace {

bool unspecified(const IpAddr& a) {
  static const uint8_t v4any[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
  static const uint8_t v6any[16] = {};
  return std::memcmp(a.bytes, v4any, 16) == 0 || std::memcmp(a.bytes, v6any, 16) == 0;
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
  return Error::invalid("bypass: not an IPv4/IPv6 socket");
}

}  // namespace

sock_endpoint_key endpoint_key(const Endpoint& e) {
  sock_endpoint_key k{};
  if (!unspecified(e.addr)) std::memcpy(k.addr, e.addr.bytes, HELIOS_ADDR_LEN);
  k.port = e.port;
  return k;
}

Result<sock_tuple_key> socket_tuple_key(int fd) {
  sockaddr_storage local{}, remote{};
  socklen_t ll = sizeof(local), rl = sizeof(remote);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0)
    return Error::from_errno("bypass: getsockname");
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &rl) != 0)
    return Error::from_errno("bypass: getpeername");
  auto l = from_sockaddr(local);
  if (!l) return l.error();
  auto r = from_sockaddr(remote);
  if (!r) return r.error();
  sock_tuple_key k{};
  std::memcpy(k.local_addr, l->addr.bytes, HELIOS_ADDR_LEN);
  std::memcpy(k.remote_addr, r->addr.bytes, HELIOS_ADDR_LEN);
  k.local_port = l->port;
  k.remote_port = r->port;
  return k;
}

Status validate(const BypassSpec& spec) {
  if (spec.endpoints.empty()) return Error::invalid("bypass: no endpoints to bypass");
  if (spec.endpoints.size() > HELIOS_SOCK_BYPASS_MAX_ENDPOINTS)
    return Error::invalid("bypass: more than " + std::to_string(HELIOS_SOCK_BYPASS_MAX_ENDPOINTS) +
                          " endpoints");
  for (size_t i = 0; i < spec.endpoints.size(); ++i) {
    const auto& e = spec.endpoints[i];
    if (e.endpoint.port == 0)
      return Error::invalid("bypass: endpoint " + format_endpoint(e.endpoint) + " has port 0");
    if (e.role != BYPASS_ROLE_PROXY_LISTEN && e.role != BYPASS_ROLE_DATABASE)
      return Error::invalid("bypass: endpoint " + format_endpoint(e.endpoint) + " has no role");
    for (size_t j = 0; j < i; ++j) {
      auto a = endpoint_key(e.endpoint), b = endpoint_key(spec.endpoints[j].endpoint);
      if (std::memcmp(&a, &b, sizeof(a)) == 0)
        return Error::invalid("bypass: endpoint " + format_endpoint(e.endpoint) + " listed twice");
    }
  }
  if (!spec.cgroup.empty() && !is_cgroup2_dir(spec.cgroup))
    return Error::invalid("bypass: " + spec.cgroup + " is not a cgroup v2 directory");
  return {};
}

Result<BypassSpec> bypass_spec_from_config(const control::Config& config) {
  BypassSpec spec;
  spec.instance = config.proxy.instance;
  auto listen = parse_ip(config.proxy.listen_address.host);
  if (!listen) return listen.error();
  spec.endpoints.push_back({{*listen, config.proxy.listen_address.port}, BYPASS_ROLE_PROXY_LISTEN});
  if (!config.backend.unix_socket()) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(config.backend.host.c_str(), nullptr, &hints, &res);
    if (rc != 0)
      return Error{EINVAL, "bypass: resolving [backend] host '" + config.backend.host +
                               "': " + gai_strerror(rc)};
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      sockaddr_storage ss{};
      std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
      auto e = from_sockaddr(ss);
      if (!e) continue;
      e->port = config.backend.port;
      bool dup = false;
      for (const auto& have : spec.endpoints)
        dup = dup || (have.endpoint.addr == e->addr && have.endpoint.port == e->port);
      if (!dup) spec.endpoints.push_back({*e, BYPASS_ROLE_DATABASE});
    }
    freeaddrinfo(res);
  }
  return spec;
}

}  // namespace helios::bpf
