// What the same-host bypass may touch: the endpoints whose local connections it shortcuts (the
// proxy's listen address, the database address), the cgroup v2 its sockops program watches, and
// the pin instance. Built from the proxy config (proxy/bpf_specs.h) or by hand (tests, heliosctl).
#pragma once

#include <string>
#include <vector>

#include "bpf/net_addr.h"
#include "common/result.h"
#include "helios/bpf_abi.h"

namespace helios::bpf {

struct BypassEndpoint {
  Endpoint endpoint;  // an unspecified address (0.0.0.0, ::) matches any address on that port
  sock_bypass_role role = BYPASS_ROLE_PROXY_LISTEN;
};

struct BypassSpec {
  std::string instance = "default";  // pins under /sys/fs/bpf/helios/<instance>/
  // The cgroup v2 whose sockets are considered. Both ends of a hop must be inside it (the app
  // and the proxy for the sidecar hop; the proxy and PostgreSQL for the database hop), so the
  // default is the whole v2 hierarchy; a pod's cgroup limits it to the pod. "" = the mount.
  std::string cgroup;
  std::vector<BypassEndpoint> endpoints;
};

// The endpoint in the map's form (unspecified address -> all-zero wildcard).
sock_endpoint_key endpoint_key(const Endpoint& e);
// The 4-tuple key of a connected TCP socket, from getsockname/getpeername.
Result<sock_tuple_key> socket_tuple_key(int fd);

// Non-empty endpoint list, ports non-zero, no duplicates, cgroup (if set) is a cgroup v2 dir.
Status validate(const BypassSpec& spec);

}  // namespace helios::bpf
