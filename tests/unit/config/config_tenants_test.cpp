// Tenant rules and tiers: resolution of inherited values, the ambiguity check, the connection
// budget of seed 003, and reload equality.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "config/config.h"
#include "tenant/glob.h"
#include "tenant/planner.h"

using namespace helios;
using namespace helios::config;

namespace {

ParseOptions options() {
  ParseOptions o;
  o.source_name = "proxy.toml";
  o.getenv = [](std::string_view n) -> std::optional<std::string> {
    if (n == "HELIOS_DB_PASSWORD") return std::string("pw");
    return std::nullopt;
  };
  o.os_user = [] { return std::string("proxyuser"); };
  return o;
}

std::string tiers_toml() {
  const std::string here = __FILE__;
  const std::string root = here.substr(0, here.rfind("tests/unit/"));  // "" if __FILE__ is relative
  std::ifstream in((root.empty() ? "./" : root) + "config/examples/tiers.toml");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

int line_containing(const std::string& text, const std::string& needle) {
  const size_t at = text.find(needle);
  REQUIRE(at != std::string::npos);
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
}

}  // namespace

TEST_CASE("seed 003 with 25 premium tenants is refused, saying by how much") {
  const std::string toml = replace(tiers_toml(), "expected_tenants = 20", "expected_tenants = 25");
  Result<Config> c = parse_config(toml, options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message ==
        "proxy.toml:" + std::to_string(line_containing(toml, "db_max_connections = 200")) +
            ": connection budget: pools need 204 connections but the database allows 200 - 20 "
            "reserved = 180: over by 24 (tier free (shared): 16, tier premium (dedicated): 6 x "
            "25 = 150, tier standard (shared): 18, default pool: 20)");

  const std::string no_reserve =
      replace(toml, "reserved_connections = 20", "reserved_connections = 0");
  c = parse_config(no_reserve, options());
  REQUIRE_FALSE(c.ok());
  CHECK(
      c.error().message.find("pools need 204 connections but the database allows 200: over by 4") !=
      std::string::npos);

  // Without db_max_connections there is nothing to check against: it loads, with a warning.
  const std::string unknown_db =
      replace(toml, "db_max_connections = 200", "db_max_connections = 0");
  c = parse_config(unknown_db, options());
  REQUIRE(c.ok());
  REQUIRE(c->warnings.size() == 1);
  CHECK(c->warnings[0].find("db_max_connections is not set, so tier pools (204 connections") !=
        std::string::npos);
}

TEST_CASE("tier checks: steady-state floor, planned size, undefined tiers") {
  std::string toml = replace(tiers_toml(), "pool_size = 6 ", "pool_size = 2 ");
  Result<Config> c = parse_config(toml, options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message ==
        "proxy.toml:" + std::to_string(line_containing(toml, "pool_size = 2 ")) +
            ": [tiers.premium] pool_size 2 is below the steady-state need peak_qps x "
            "mean_service_s = 3 connections; its queue would grow without bound");

  toml = replace(tiers_toml(), "pool_size = 6 ", "pool_size = 5 ");
  c = parse_config(toml, options());
  REQUIRE(c.ok());
  REQUIRE(c->warnings.size() == 1);
  CHECK(c->warnings[0].find("[tiers.premium] pool_size 5 is below the planned size "
                            "ceil(L x burst_factor) = 6") != std::string::npos);

  toml = replace(tiers_toml(), "tier = \"standard\"", "tier = \"standrd\"");
  c = parse_config(toml, options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message ==
        "proxy.toml:" + std::to_string(line_containing(toml, "tier = \"standrd\"")) +
            ": [[tenant_quotas.limits]] #2 tier: no tier \"standrd\" is defined (did you mean "
            "\"standard\"?)");
  c = parse_config("[tenant_quotas.default]\ntier = \"gold\"\n", options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message ==
        "proxy.toml:2: [tenant_quotas.default] tier: no tier \"gold\" is defined (define it as "
        "[tiers.gold])");
  c = parse_config("[tiers.gold]\npool_size = 4\nmin_connections = 5\n", options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message ==
        "proxy.toml:3: [tiers.gold] min_connections (5) must not exceed pool_size (4)");
}

TEST_CASE("query_timeout: [connection_pool]'s unless a rule sets its own") {
  Result<Config> c = parse_config(
      "[connection_pool]\nquery_timeout = \"30s\"\n"
      "[tenant_quotas]\nenabled = true\n"
      "[[tenant_quotas.limits]]\ntenant_pattern = \"batch_*\"\nquery_timeout = 0\n"
      "[[tenant_quotas.limits]]\ntenant_pattern = \"web_*\"\nquery_timeout = \"2s\"\n"
      "[[tenant_quotas.limits]]\ntenant_pattern = \"x_*\"\nmax_qps = 1\n",
      options());
  REQUIRE(c.ok());
  CHECK(c->connection_pool.query_timeout == 30 * kNanosPerSec);
  CHECK(c->tenant_quotas.limits[0].limits.query_timeout == 0);  // explicitly none
  CHECK(c->tenant_quotas.limits[1].limits.query_timeout == 2 * kNanosPerSec);
  CHECK(c->tenant_quotas.limits[2].limits.query_timeout == 30 * kNanosPerSec);  // inherited
  CHECK(c->tenant_quotas.default_limits.query_timeout == 30 * kNanosPerSec);
}

TEST_CASE("read_write_split: [routing]'s unless a rule sets its own") {
  Result<Config> c = parse_config(
      "[routing]\nread_write_split = true\n"
      "[tenant_quotas]\nenabled = true\n"
      "[[tenant_quotas.limits]]\ntenant_pattern = \"ledger\"\nread_write_split = false\n"
      "[[tenant_quotas.limits]]\ntenant_pattern = \"x_*\"\nmax_qps = 1\n",
      options());
  REQUIRE(c.ok());
  CHECK(c->tenant_quotas.limits[0].limits.read_write_split == false);  // explicitly off
  CHECK(c->tenant_quotas.limits[1].limits.read_write_split == true);   // inherited
  CHECK(c->tenant_quotas.default_limits.read_write_split == true);
  c = parse_config(
      "[tenant_quotas]\nenabled = true\n"
      "[[tenant_quotas.limits]]\ntenant_pattern = \"reports_*\"\nread_write_split = true\n",
      options());
  REQUIRE(c.ok());
  CHECK(c->tenant_quotas.limits[0].limits.read_write_split == true);
  CHECK(c->tenant_quotas.default_limits.read_write_split == false);
}

TEST_CASE("rules inherit from their tier, [tenant_quotas] and [proxy]") {
  Result<Config> c = parse_config(
      "[proxy]\nmode = \"session\"\ndata_path = \"auto\"\n"
      "[tenant_quotas]\nenabled = true\nqps_max_wait = \"250ms\"\n"
      "[[tenant_quotas.limits]]\ntenant_pattern = \"gold_*\"\ntier = \"gold\"\nmax_qps = 100\n"
      "[[tenant_quotas.limits]]\ntenant_pattern = \"x_*\"\npool_mode = \"statement\"\n"
      "weight = 7\nqps_burst = 5\nmax_qps = 1\nqps_max_wait = 0\ndata_path = \"kernel\"\n"
      "[tiers.gold]\npool_size = 5\nweight = 3\npool_mode = \"transaction\"\n",
      options());
  REQUIRE(c.ok());
  const TenantLimits& gold = c->tenant_quotas.limits[0].limits;
  CHECK(gold.pool_mode == PoolMode::kTransaction);   // the tier's
  CHECK(gold.weight == 3);                           // the tier's
  CHECK(gold.qps_burst == 100);                      // = max_qps
  CHECK(gold.qps_max_wait == 250 * kNanosPerMilli);  // [tenant_quotas]
  CHECK(gold.data_path == DataPathMode::kAuto);      // [proxy]
  const TenantLimits& x = c->tenant_quotas.limits[1].limits;
  CHECK(x.pool_mode == PoolMode::kStatement);
  CHECK(x.weight == 7);
  CHECK(x.qps_burst == 5);
  CHECK(x.qps_max_wait == 0);  // explicitly 0: reject at once
  CHECK(x.data_path == DataPathMode::kKernel);
  CHECK(c->tenant_quotas.default_limits.pool_mode == PoolMode::kSession);
  CHECK(c->tenant_quotas.default_limits.weight == 1);

  c = parse_config("[tenant_quotas]\nidentifier = \"parameter:tenant\"\n", options());
  REQUIRE(c.ok());
  CHECK(c->tenant_quotas.identifier.kind == TenantIdentifierKind::kParameter);
  CHECK(c->tenant_quotas.identifier.parameter == "tenant");
}

TEST_CASE("two equally specific overlapping patterns are ambiguous") {
  const std::string toml =
      "[tenant_quotas]\n"
      "enabled = true\n"
      "\n"
      "[[tenant_quotas.limits]]\n"
      "tenant_pattern = \"tenant_a*\"\n"
      "max_qps = 10\n"
      "\n"
      "[[tenant_quotas.limits]]\n"
      "tenant_pattern = \"*tenant_b\"\n"
      "max_qps = 20\n";
  Result<Config> c = parse_config(toml, options());
  REQUIRE_FALSE(c.ok());
  const std::string& m = c.error().message;
  const std::string prefix = "proxy.toml:8: ambiguous rules at lines 4 and 8: both match e.g. \"";
  REQUIRE(m.rfind(prefix, 0) == 0);
  const std::string example = m.substr(prefix.size(), m.find('"', prefix.size()) - prefix.size());
  CHECK(tenant::glob_match("tenant_a*", example));
  CHECK(tenant::glob_match("*tenant_b", example));

  // Same pattern twice is ambiguous too.
  c = parse_config(
      "[[tenant_quotas.limits]]\ntenant_pattern = \"t_*\"\n[[tenant_quotas.limits]]\n"
      "tenant_pattern = \"t_*\"\n",
      options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message.find("proxy.toml:3: ambiguous rules at lines 1 and 3: both match e.g. "
                               "\"t_") == 0);

  // Equal specificity without overlap, or overlap with a clear winner, is fine.
  CHECK(parse_config("[[tenant_quotas.limits]]\ntenant_pattern = \"tenant_a*\"\n"
                     "[[tenant_quotas.limits]]\ntenant_pattern = \"tenant_b*\"\n",
                     options())
            .ok());
  CHECK(parse_config("[[tenant_quotas.limits]]\ntenant_pattern = \"tenant_*\"\n"
                     "[[tenant_quotas.limits]]\ntenant_pattern = \"tenant_premium_*\"\n",
                     options())
            .ok());
}

TEST_CASE("invalid globs and CIDRs are refused at their line") {
  Result<Config> c =
      parse_config("[[tenant_quotas.limits]]\ntenant_pattern = \"tenant_[ab\"\n", options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message.rfind("proxy.toml:2: [[tenant_quotas.limits]] #1 tenant_pattern "
                                "\"tenant_[ab\" is not a valid glob: ",
                                0) == 0);
  c = parse_config(
      "[[tenant_quotas.limits]]\ntenant_pattern = \"a*\"\nallowed_users = [\"ok\", \"app_[\"]\n",
      options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message.rfind("proxy.toml:3: [[tenant_quotas.limits]] #1 allowed_users "
                                "\"app_[\" is not a valid glob: ",
                                0) == 0);
  c = parse_config(
      "[[tenant_quotas.limits]]\ntenant_pattern = \"a*\"\nallowed_users = [\"app_*\"]\n",
      options());
  REQUIRE(c.ok());
  CHECK(c->tenant_quotas.limits[0].limits.allowed_users == std::vector<std::string>{"app_*"});
  c = parse_config(
      "[[tenant_quotas.limits]]\ntenant_pattern = \"a*\"\nedge_cidrs = [\"10.1.0.1/16\"]\n",
      options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message ==
        "proxy.toml:3: [[tenant_quotas.limits]] #1 edge_cidrs: \"10.1.0.1/16\" has host bits set "
        "(did you mean \"10.1.0.0/16\"?)");
  c = parse_config(
      "[[tenant_quotas.limits]]\ntenant_pattern = \"a*\"\nedge_cidrs = [\"10.1.0.0/33\"]\n",
      options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message.find("prefix length in \"10.1.0.0/33\" must be 0..32") !=
        std::string::npos);
  c = parse_config(
      "[edge]\nenabled = true\ninterface = \"eth0\"\nvip = \"10.0.0.1:5432\"\n"
      "[[tenant_quotas.limits]]\ntenant_pattern = \"a*\"\nedge_cidrs = [\"10.1.0.0/16\"]\n"
      "[[tenant_quotas.limits]]\ntenant_pattern = \"b*\"\n"
      "edge_cidrs = [\"2001:db8::/32\", \"10.1.0.0/16\"]\n",
      options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message ==
        "proxy.toml:10: [[tenant_quotas.limits]] #2 edge_cidrs: 10.1.0.0/16 is also listed by "
        "rule #1 at line 5");
  c = parse_config("[[tenant_quotas.limits]]\ntenant_pattern = \"a*\"\nedge_syn_rate = 100\n",
                   options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message.find("proxy.toml:3: [[tenant_quotas.limits]] #1 edge_syn_rate needs "
                               "edge_cidrs") == 0);
}

TEST_CASE("multiplexing_ratio is advisory: a warning when clients per backend exceed it") {
  Result<Config> c = parse_config(
      "[backend]\nmax_connections = 100\n[connection_pool]\nmultiplexing_ratio = 100\n"
      "max_client_connections = 20000\n",
      options());
  REQUIRE(c.ok());
  bool warned = false;
  for (const std::string& w : c->warnings) {
    warned |= w.find(
                  "proxy.toml:4: [connection_pool] multiplexing_ratio 100: "
                  "max_client_connections 20000 over 100 backend connections is 200") == 0;
  }
  CHECK(warned);
}

TEST_CASE("Config compares settings only, so reload can tell when nothing changed") {
  const std::string toml = tiers_toml();
  Result<Config> a = parse_config(toml, options());
  Result<Config> b = parse_config("# a comment moves every line\n\n" + toml, options());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a == *b);
  Config copy = *a;
  CHECK(copy == *a);
  Result<Config> changed = parse_config(replace(toml, "max_qps = 50", "max_qps = 51"), options());
  REQUIRE(changed.ok());
  CHECK_FALSE(*changed == *a);
}

TEST_CASE("a heliosctl plan snippet pastes into a config and gives the same budget") {
  tenant::PlanInput input;
  input.db_max_connections = 200;
  input.reserved = 20;
  input.default_pool = 20;
  for (const char* spec : {"premium:dedicated:120:0.025:2.0:20:4",
                           "standard:shared:300:0.040:1.5:1:2", "free:shared:200:0.060:1.3:1"}) {
    Result<tenant::TierInput> tier = tenant::parse_tier_spec(spec);
    REQUIRE(tier.ok());
    input.tiers.push_back(*tier);
  }
  Result<tenant::Plan> plan = tenant::make_plan(input);
  REQUIRE(plan.ok());
  const std::string toml =
      "[backend]\nuser = \"u\"\nmax_connections = 20\ndb_max_connections = 200\n"
      "reserved_connections = 20\n\n" +
      tenant::format_plan_toml(*plan);
  Result<Config> c = parse_config(toml, options());
  if (!c) FAIL(c.error().message);
  CHECK(c->warnings.empty());
  REQUIRE(c->tiers.size() == 3);
  CHECK(c->find_tier("premium")->pool_size == 6);
  CHECK(c->find_tier("premium")->expected_tenants == 20);
  CHECK(c->find_tier("premium")->weight == 4);
  CHECK(c->find_tier("standard")->pool_size == 18);
  CHECK(c->find_tier("free")->pool_size == 16);
  const ConnectionBudget b = compute_connection_budget(*c);
  CHECK(static_cast<uint64_t>(b.needed + b.reserved) == plan->total);
  CHECK(b.fits() == plan->fits);
}
