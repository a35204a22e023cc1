// The proxy config ([edge], [vip], [[tenant_quotas.limits]] edge_* keys) as an EdgeSpec.
#pragma once

#include <string>

#include "bpf/edge_spec.h"

namespace helios::control {
struct Config;
}

namespace helios::bpf {

// One tenant per rule with edge_cidrs, named by its tenant_pattern (cut to
// HELIOS_EDGE_TENANT_NAME_LEN-1 bytes), plus "(default)" for [tenant_quotas.default] edge_cidrs.
// vip is [edge] vip, else [vip] address:port. The instance is "default"; heliosctl may override
// it and any other field with flags.
EdgeSpec edge_spec_from_config(const control::Config& config);

inline constexpr const char* kDefaultRuleTenant = "(default)";

}  // namespace helios::bpf
