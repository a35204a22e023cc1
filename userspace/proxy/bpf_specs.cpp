#include "proxy/bpf_specs.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cstring>

#include "bpf/net_addr.h"
#include "helios/bpf_abi.h"

namespace helios::proxy {

namespace {

bpf::EdgeTenantRule rule_from(const std::string& name, const config::TenantLimits& l) {
  bpf::EdgeTenantRule r;
  r.tenant = name.substr(0, HELIOS_EDGE_TENANT_NAME_LEN - 1);
  for (const auto& c : l.edge_cidrs) r.cidrs.push_back(c.to_string());
  r.syn_rate = double(l.edge_syn_rate);
  r.syn_burst = double(l.edge_syn_burst);
  return r;
}

}  // namespace

bpf::EdgeSpec edge_spec_from_config(const config::Config& config) {
  bpf::EdgeSpec s;
  const auto& e = config.edge;
  s.interface = e.interface;
  s.skb_mode = e.xdp_mode == config::XdpMode::kSkb;
  if (e.vip) {
    s.vip = e.vip->to_string();
  } else if (!config.vip.address.empty()) {
    config::HostPort hp{config.vip.address, config.vip.port};
    s.vip = hp.to_string();
  }
  s.global_syn_rate = double(e.global_syn_rate);
  s.global_syn_burst = double(e.global_syn_burst);
  const auto& q = config.tenant_quotas;
  for (const auto& rule : q.limits)
    if (!rule.limits.edge_cidrs.empty())
      s.tenants.push_back(rule_from(rule.tenant_pattern, rule.limits));
  if (!q.default_limits.edge_cidrs.empty())
    s.tenants.push_back(rule_from(kDefaultRuleTenant, q.default_limits));
  return s;
}

Result<bpf::BypassSpec> bypass_spec_from_config(const config::Config& config) {
  bpf::BypassSpec spec;
  spec.instance = config.proxy.instance;
  auto listen = bpf::parse_ip(config.proxy.listen_address.host);
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
      auto e = bpf::from_sockaddr(ss);
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

}  // namespace helios::proxy
