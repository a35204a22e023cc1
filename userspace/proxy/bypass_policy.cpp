#include "proxy/bypass_policy.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "bpf/feature_probe.h"
#include "bpf/sockops_bypass.h"
#include "common/unique_fd.h"

namespace helios::proxy {

namespace {

bool splicing_configured(const config::Config& cfg) {
  bool any = cfg.proxy.data_path != config::DataPathMode::kUserspace;
  for (const auto& r : cfg.tenant_quotas.limits)
    any = any || r.limits.data_path != config::DataPathMode::kUserspace;
  return any || cfg.tenant_quotas.default_limits.data_path != config::DataPathMode::kUserspace;
}

// Whether this network namespace owns `a`: a socket can bind to it (no IP_FREEBIND).
bool owned(const bpf::IpAddr& a) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (a.is_v4()) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    v4->sin_family = AF_INET;
    std::memcpy(&v4->sin_addr, a.bytes + 12, 4);
    len = sizeof(*v4);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    v6->sin6_family = AF_INET6;
    std::memcpy(&v6->sin6_addr, a.bytes, 16);
    len = sizeof(*v6);
  }
  UniqueFd s(socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  return s && bind(s.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0;
}

// Every address of every backend host; the first failure as an error message.
std::string resolve_hosts(const config::BackendConfig& b, std::vector<DatabaseAddress>& out) {
  for (const auto& hp : b.host_list()) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(hp.host.c_str(), nullptr, &hints, &res);
    if (rc != 0) return "'" + hp.host + "': " + gai_strerror(rc);
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      sockaddr_storage ss{};
      std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
      auto e = bpf::from_sockaddr(ss);
      if (!e) continue;
      bool dup = false;
      for (const auto& have : out) dup = dup || have.addr == e->addr;
      if (!dup) out.push_back({e->addr, is_loopback(e->addr) || owned(e->addr)});
    }
    freeaddrinfo(res);
  }
  return "";
}

}  // namespace

bool is_loopback(const bpf::IpAddr& a) {
  if (a.is_v4()) return a.bytes[12] == 127;
  static const uint8_t v6lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return std::memcmp(a.bytes, v6lo, 16) == 0;
}

BypassDecision decide_bypass(const BypassFacts& f) {
  using O = BypassOutcome;
  if (f.setting == config::BypassSetting::kOn) return {O::kAttach, "same_host_bypass = true"};
  if (f.setting == config::BypassSetting::kOff) return {O::kSkip, "same_host_bypass = false"};
  if (f.splicing_configured)
    return {O::kSkip,
            "data_path \"kernel\" or \"auto\" is configured, and a spliced lease's socket must not "
            "be in the bypass map"};
  if (f.database_unix_socket)
    return {O::kSkip, "[backend] host is a unix socket: no TCP hop to PostgreSQL to shortcut"};
  if (!f.database_resolve_error.empty())
    return {O::kSkip, "[backend] host did not resolve: " + f.database_resolve_error};
  if (f.database_addresses.empty()) return {O::kSkip, "[backend] host resolved to no address"};
  std::string local;
  for (const auto& a : f.database_addresses) {
    if (!a.local && !is_loopback(a.addr))
      return {O::kSkip, "PostgreSQL is not on this host (" + bpf::format_ip(a.addr) +
                            " is neither loopback nor an address of this host)"};
    local += (local.empty() ? "" : ", ") + bpf::format_ip(a.addr);
  }
  if (!f.redirect_flow_control)
    return {O::kSkip,
            "this kernel's sk_msg redirect has no flow control (a socket that stops reading does "
            "not hold back its local sender), so the proxy's backpressure would not bound memory; "
            "same_host_bypass = true attaches it anyway"};
  if (!f.kernel_refusal.empty()) return {O::kKernelRefused, f.kernel_refusal};
  return {O::kAttach, "PostgreSQL is on this host (" + local + ")"};
}

BypassFacts gather_bypass_facts(const config::Config& cfg) {
  BypassFacts f;
  f.setting = cfg.proxy.same_host_bypass;
  if (f.setting != config::BypassSetting::kAuto) return f;
  f.splicing_configured = splicing_configured(cfg);
  if (f.splicing_configured) return f;
  f.database_unix_socket = cfg.backend.unix_socket();
  if (f.database_unix_socket) return f;
  f.database_resolve_error = resolve_hosts(cfg.backend, f.database_addresses);
  f.redirect_flow_control = bpf::kRedirectHasFlowControl;
  if (!f.redirect_flow_control) return f;  // no probe for a bypass that cannot be attached
  if (auto s = bpf::require_bypass(bpf::probe_kernel_features()); !s)
    f.kernel_refusal = s.error().message;
  return f;
}

}  // namespace helios::proxy
