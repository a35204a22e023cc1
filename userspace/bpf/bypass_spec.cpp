#include "bpf/bypass_spec.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "bpf/feature_probe.h"

namespace helios::bpf {

namespace {

bool unspecified(const IpAddr& a) {
  static const uint8_t v4any[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
  static const uint8_t v6any[16] = {};
  return std::memcmp(a.bytes, v4any, 16) == 0 || std::memcmp(a.bytes, v6any, 16) == 0;
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
}  // namespace helios::bpf
