// The proxy config as the specs the BPF loaders take: bpf/ never reads the config, the proxy
// (and heliosctl) convert it here.
#pragma once

#include "bpf/bypass_spec.h"
#include "bpf/edge_spec.h"
#include "common/result.h"
#include "config/config.h"

namespace helios::proxy {

// [edge], [vip] and the edge_* keys of [[tenant_quotas.limits]] as an EdgeSpec: one tenant per
// rule with edge_cidrs, named by its tenant_pattern (cut to HELIOS_EDGE_TENANT_NAME_LEN-1 bytes),
// plus "(default)" for [tenant_quotas.default] edge_cidrs. vip is [edge] vip, else [vip]
// address:port. The instance is "default"; heliosctl may override it and any field with flags.
bpf::EdgeSpec edge_spec_from_config(const config::Config& config);

inline constexpr const char* kDefaultRuleTenant = "(default)";

// [proxy] listen_address (role proxy) and every address [backend] host resolves to, with
// [backend] port (role database; skipped for a unix socket backend). instance from [proxy].
Result<bpf::BypassSpec> bypass_spec_from_config(const config::Config& config);

}  // namespace helios::proxy
