// The ABI header and the programs agree: map names, key and value sizes (no kernel needed:
// the skeleton is only opened, not loaded). And the address/flag parsers the CLI relies on.
#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "bpf/edge_spec.h"
#include "bpf/net_addr.h"
#include "bpf/skeleton.h"
#include "helios/bpf_abi.h"
#include "helios/xdp_guard.skel.h"
#include "map_abi.h"

using namespace helios::bpf;

TEST_CASE("xdp_guard maps carry the ABI names and sizes") {
  auto s = Skeleton<xdp_guard>::open();
  REQUIRE(s.ok());
  auto& m = (*s)->maps;
  helios::bpf::testing::check_map_abi({
      {m.guard_config, HELIOS_MAP_GUARD_CONFIG, 4, sizeof(edge_guard_config)},
      {m.vip_table, HELIOS_MAP_VIP_TABLE, sizeof(edge_vip_key), sizeof(edge_vip_value)},
      {m.tenant_cidrs, HELIOS_MAP_TENANT_CIDRS, sizeof(edge_cidr_key), sizeof(edge_cidr_value)},
      {m.tenant_rules, HELIOS_MAP_TENANT_RULES, 4, sizeof(edge_tenant_rule)},
      {m.syn_buckets, HELIOS_MAP_SYN_BUCKETS, 4, sizeof(edge_syn_bucket)},
      {m.global_bucket, HELIOS_MAP_GLOBAL_BUCKET, 4, sizeof(edge_syn_bucket)},
      {m.tenant_counters, HELIOS_MAP_TENANT_COUNTERS, 4, sizeof(edge_tenant_counters)},
      {m.guard_stats, HELIOS_MAP_GUARD_STATS, 4, sizeof(edge_guard_stats)},
  });
  CHECK(bpf_map__max_entries(m.tenant_counters) == HELIOS_EDGE_MAX_TENANTS);
  CHECK(bpf_map__max_entries(m.tenant_cidrs) == HELIOS_EDGE_MAX_CIDRS);
}

TEST_CASE("endpoints and CIDRs parse into the IPv4-mapped ABI form") {
  auto e = parse_endpoint("10.0.0.1:5432");
  REQUIRE(e.ok());
  CHECK(e->port == 5432);
  CHECK(e->addr.is_v4());
  CHECK(format_endpoint(*e) == "10.0.0.1:5432");
  auto e6 = parse_endpoint("[fd00::1]:6432");
  REQUIRE(e6.ok());
  CHECK(!e6->addr.is_v4());
  CHECK(format_endpoint(*e6) == "[fd00::1]:6432");
  CHECK(!parse_endpoint("fd00::1:5432").ok());
  CHECK(!parse_endpoint("10.0.0.1").ok());
  CHECK(!parse_endpoint("10.0.0.1:0").ok());
  CHECK(!parse_endpoint("10.0.0.1:70000").ok());
  CHECK(!parse_endpoint("nohost:5432").ok());

  auto c = parse_cidr("10.1.2.3/16");
  REQUIRE(c.ok());
  CHECK(c->prefixlen == 96 + 16);
  CHECK(format_cidr(*c) == "10.1.0.0/16");  // host bits cleared
  auto c6 = parse_cidr("fd00:1::5/64");
  REQUIRE(c6.ok());
  CHECK(c6->prefixlen == 64);
  CHECK(format_cidr(*c6) == "fd00:1::/64");
  CHECK(format_cidr(*parse_cidr("192.0.2.7")) == "192.0.2.7/32");
  CHECK(!parse_cidr("10.0.0.0/33").ok());
  CHECK(!parse_cidr("fd00::/129").ok());
}

TEST_CASE("--tenant NAME=CIDR[,CIDR]:RATE[:BURST]") {
  auto r = parse_tenant_flag("acme=10.1.0.0/16,fd00:1::/64:50:100");
  REQUIRE(r.ok());
  CHECK(r->tenant == "acme");
  CHECK(r->cidrs == std::vector<std::string>{"10.1.0.0/16", "fd00:1::/64"});
  CHECK(r->syn_rate == 50);
  CHECK(r->syn_burst == 100);
  auto r2 = parse_tenant_flag("b=10.2.0.0/24:2.5");
  REQUIRE(r2.ok());
  CHECK(r2->syn_rate == 2.5);
  CHECK(r2->syn_burst == 0);
  CHECK(!parse_tenant_flag("nocidr=:5").ok());
  CHECK(!parse_tenant_flag("norate=10.0.0.0/8").ok());
  CHECK(!parse_tenant_flag("=10.0.0.0/8:5").ok());
  CHECK(!parse_tenant_flag("bad=10.0.0.300/8:5").ok());
}

TEST_CASE("spec validation names the offending item") {
  EdgeSpec s;
  s.vip = "10.0.0.1:5432";
  s.tenants = {{"a", {"10.1.0.0/16"}, 10, 0}, {"b", {"10.1.0.0/16"}, 10, 0}};
  auto v = validate(s);
  REQUIRE(!v.ok());
  CHECK(v.error().message.find("10.1.0.0/16") != std::string::npos);
  s.tenants[1].cidrs = {"10.2.0.0/16"};
  CHECK(validate(s).ok());
  s.tenants[1].tenant = std::string(40, 'x');
  CHECK(!validate(s).ok());
  s.tenants.pop_back();
  s.vip = "";
  CHECK(!validate(s).ok());
  CHECK(rate_to_milli(2.5) == 2500);
  CHECK(rate_to_milli(0) == 0);
  CHECK(burst_to_milli(0, 20) == 20000);
  CHECK(burst_to_milli(0, 0.1) == 1000);
}
