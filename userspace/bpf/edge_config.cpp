#include "bpf/edge_config.h"

#include "control/config.h"
#include "helios/bpf_abi.h"

namespace helios::bpf {

namespace {

EdgeTenantRule rule_from(const std::string& name, const control::TenantLimits& l) {
  EdgeTenantRule r;
  r.tenant = name.substr(0, HELIOS_EDGE_TENANT_NAME_LEN - 1);
  for (const auto& c : l.edge_cidrs) r.cidrs.push_back(c.to_string());
  r.syn_rate = double(l.edge_syn_rate);
  r.syn_burst = double(l.edge_syn_burst);
  return r;
}

}  // namespace

EdgeSpec edge_spec_from_config(const control::Config& config) {
  EdgeSpec s;
  const auto& e = config.edge;
  s.interface = e.interface;
  s.skb_mode = e.xdp_mode == control::XdpMode::kSkb;
  if (e.vip) {
    s.vip = e.vip->to_string();
  } else if (!config.vip.address.empty()) {
    control::HostPort hp{config.vip.address, config.vip.port};
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

}  // namespace helios::bpf
