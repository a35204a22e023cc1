// edge_spec_from_config: the proxy config's [edge], [vip] and per-rule edge_* keys become the
// EdgeSpec that heliosctl attach --config and the proxy write into the guard's maps.
#include <doctest/doctest.h>

#include "config/config.h"
#include "proxy/bpf_specs.h"

using namespace helios;
using namespace helios::bpf;
using namespace helios::proxy;

namespace {
config::Config parsed(const std::string& toml) {
  auto c = config::parse_config(toml, "proxy.toml",
                                [](std::string_view) -> std::optional<std::string> { return {}; });
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
  return *c;
}
}  // namespace

TEST_CASE("rules with edge_cidrs become guard tenants") {
  auto cfg = parsed(
      "[edge]\nenabled = true\ninterface = \"eth1\"\nvip = \"10.0.0.10:5432\"\n"
      "xdp_mode = \"skb\"\nglobal_syn_rate = 5000\n"
      "[tenant_quotas]\nenabled = true\n"
      "[[tenant_quotas.limits]]\ntenant_pattern = \"premium_*\"\n"
      "edge_cidrs = [\"10.1.0.0/16\", \"2001:db8:1::/48\"]\nedge_syn_rate = 500\n"
      "edge_syn_burst = 1000\n"
      "[[tenant_quotas.limits]]\ntenant_pattern = \"free_*\"\nmax_connections = 5\n");
  EdgeSpec s = edge_spec_from_config(cfg);
  CHECK(s.interface == "eth1");
  CHECK(s.vip == "10.0.0.10:5432");
  CHECK(s.skb_mode);
  CHECK(s.global_syn_rate == 5000);
  CHECK(s.global_syn_burst == 5000);  // resolved to the rate
  REQUIRE(s.tenants.size() == 1);     // free_* has no edge_cidrs
  CHECK(s.tenants[0].tenant == "premium_*");
  CHECK(s.tenants[0].cidrs == std::vector<std::string>{"10.1.0.0/16", "2001:db8:1::/48"});
  CHECK(s.tenants[0].syn_rate == 500);
  CHECK(s.tenants[0].syn_burst == 1000);
  CHECK(validate(s).ok());
}

TEST_CASE("the VIP falls back to [vip] address and port") {
  auto cfg = parsed("[vip]\naddress = \"2001:db8::10\"\nport = 6432\n");
  EdgeSpec s = edge_spec_from_config(cfg);
  CHECK(s.vip == "[2001:db8::10]:6432");
  CHECK(!s.skb_mode);
  CHECK(s.tenants.empty());
}
