#include "bpf/edge_spec.h"

#include <cmath>
#include <cstdlib>
#include <set>

#include "bpf/net_addr.h"
#include "helios/bpf_abi.h"

namespace helios::bpf {

uint64_t rate_to_milli(double per_sec) {
  if (!(per_sec > 0)) return 0;
  double capped = std::min(per_sec, double(HELIOS_EDGE_MAX_SYN_RATE));
  return static_cast<uint64_t>(std::llround(capped * double(HELIOS_EDGE_TOKEN_SCALE)));
}

uint64_t burst_to_milli(double burst, double rate) {
  double b = burst > 0 ? burst : std::max(rate, 1.0);
  b = std::min(b, double(HELIOS_EDGE_MAX_SYN_RATE) * 10);
  uint64_t m = static_cast<uint64_t>(std::llround(b * double(HELIOS_EDGE_TOKEN_SCALE)));
  return std::max<uint64_t>(m, HELIOS_EDGE_TOKEN_SCALE);  // at least one SYN fits
}

Status validate(const EdgeSpec& spec) {
  auto vips = split_list(spec.vip);
  if (vips.empty()) return Error::invalid("edge: no VIP given (ADDR:PORT)");
  if (vips.size() > HELIOS_EDGE_MAX_VIPS / 2)
    return Error::invalid("edge: at most " + std::to_string(HELIOS_EDGE_MAX_VIPS / 2) + " VIPs");
  for (const auto& v : vips)
    if (auto e = parse_endpoint(v); !e) return Error::invalid("edge: vip: " + e.error().message);
  if (spec.tenants.size() > HELIOS_EDGE_MAX_TENANTS - 1)
    return Error::invalid("edge: at most " + std::to_string(HELIOS_EDGE_MAX_TENANTS - 1) +
                          " tenants with edge rules");
  if (spec.global_syn_rate < 0 || spec.global_syn_burst < 0 || std::isnan(spec.global_syn_rate))
    return Error::invalid("edge: global SYN rate and burst must be >= 0");
  std::set<std::string> names;
  std::set<std::string> cidrs;
  size_t ncidrs = 0;
  for (const auto& t : spec.tenants) {
    if (t.tenant.empty() || t.tenant.size() >= HELIOS_EDGE_TENANT_NAME_LEN)
      return Error::invalid("edge: tenant name '" + t.tenant + "' must be 1-" +
                            std::to_string(HELIOS_EDGE_TENANT_NAME_LEN - 1) + " bytes");
    if (!names.insert(t.tenant).second)
      return Error::invalid("edge: tenant '" + t.tenant + "' appears twice");
    if (t.syn_rate < 0 || t.syn_burst < 0 || std::isnan(t.syn_rate))
      return Error::invalid("edge: tenant '" + t.tenant + "': SYN rate and burst must be >= 0");
    if (t.cidrs.empty()) return Error::invalid("edge: tenant '" + t.tenant + "' has no CIDR");
    for (const auto& c : t.cidrs) {
      auto k = parse_cidr(c);
      if (!k) return Error::invalid("edge: tenant '" + t.tenant + "': " + k.error().message);
      std::string norm = format_cidr(*k);
      if (!cidrs.insert(norm).second)
        return Error::invalid("edge: CIDR " + norm + " is given to two tenants");
      ncidrs++;
    }
  }
  if (ncidrs > HELIOS_EDGE_MAX_CIDRS)
    return Error::invalid("edge: at most " + std::to_string(HELIOS_EDGE_MAX_CIDRS) + " CIDRs");
  return {};
}

Result<EdgeTenantRule> parse_tenant_flag(const std::string& s) {
  auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0)
    return Error::invalid("--tenant expects NAME=CIDR[,CIDR]:RATE[:BURST], got '" + s + "'");
  EdgeTenantRule r;
  r.tenant = s.substr(0, eq);
  std::string rest = s.substr(eq + 1);
  // CIDRs may be IPv6 (with colons), so RATE and BURST are taken from the right: the last one
  // or two ':'-separated fields that are plain numbers.
  auto is_number = [](const std::string& x) {
    if (x.empty()) return false;
    char* end = nullptr;
    std::strtod(x.c_str(), &end);
    return end == x.c_str() + x.size() && x.find_first_of("/") == std::string::npos;
  };
  std::vector<std::string> nums;
  while (nums.size() < 2) {
    auto colon = rest.rfind(':');
    if (colon == std::string::npos) break;
    std::string tail = rest.substr(colon + 1);
    if (!is_number(tail)) break;
    // A bare IPv6 CIDR ends in "/len", never a plain number after ':', so this is unambiguous.
    nums.insert(nums.begin(), tail);
    rest = rest.substr(0, colon);
  }
  if (nums.empty())
    return Error::invalid("--tenant '" + s + "': missing :RATE (use 0 for no tenant limit)");
  r.syn_rate = std::strtod(nums[0].c_str(), nullptr);
  if (nums.size() > 1) r.syn_burst = std::strtod(nums[1].c_str(), nullptr);
  r.cidrs = split_list(rest);
  if (r.cidrs.empty()) return Error::invalid("--tenant '" + s + "': no CIDR");
  for (const auto& c : r.cidrs)
    if (auto k = parse_cidr(c); !k)
      return Error::invalid("--tenant '" + s + "': " + k.error().message);
  return r;
}

}  // namespace helios::bpf
