// What the control plane asks of the XDP edge guard: where to attach, which VIP(s) to guard,
// the global SYN budget and each tenant's source CIDRs and SYN budget. Built from heliosctl flags
// or from the proxy config ([edge] + [[tenant_quotas.limits]] edge_* keys).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace helios::bpf {

struct EdgeTenantRule {
  std::string tenant;              // name, at most HELIOS_EDGE_TENANT_NAME_LEN-1 bytes
  std::vector<std::string> cidrs;  // source prefixes, "10.1.0.0/16", "fd00::/64"
  double syn_rate = 0;             // SYNs per second; <= 0: no per-tenant limit
  double syn_burst = 0;            // bucket depth in SYNs; <= 0: max(rate, 1)
};

struct EdgeSpec {
  std::string instance = "default";  // pins under /sys/fs/bpf/helios/<instance>/
  std::string interface;             // NIC to attach XDP to
  std::string vip;                   // "ADDR:PORT" (IPv4 or [IPv6]); several, comma separated
  bool skb_mode = false;             // generic XDP instead of native
  double global_syn_rate = 0;        // SYNs per second over all sources; <= 0: unlimited
  double global_syn_burst = 0;       // <= 0: max(rate, 1)
  bool drop_fragments = false;       // drop IP fragments addressed to a VIP address
  std::vector<EdgeTenantRule> tenants;
};

// Per-tenant counters summed over CPUs. tenant_id 0 is "(unmatched)": VIP traffic from sources
// in no tenant CIDR.
struct EdgeTenantCounters {
  std::string tenant;
  uint32_t tenant_id = 0;
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t syn_seen = 0;
  uint64_t syn_passed = 0;
  uint64_t syn_dropped = 0;         // tenant bucket empty
  uint64_t syn_dropped_global = 0;  // global bucket empty
};

inline constexpr const char* kUnmatchedTenant = "(unmatched)";

// Checks names, counts, addresses and rates; the message names the offending item.
Status validate(const EdgeSpec& spec);

// heliosctl's --tenant flag: NAME=CIDR[,CIDR...]:RATE[:BURST]  (RATE 0 = no tenant limit).
Result<EdgeTenantRule> parse_tenant_flag(const std::string& s);

// Rates as the ABI stores them (milli-SYNs), clamped to HELIOS_EDGE_MAX_SYN_RATE.
uint64_t rate_to_milli(double per_sec);
// Bucket depth in milli-SYNs: burst, or max(rate, 1) when burst <= 0.
uint64_t burst_to_milli(double burst, double rate);

}  // namespace helios::bpf
