// The configs users will copy: the reference config, seed 000's examples, the tutorial's
// [pool_mode] section and seed 003's tiers all load, with the values they say.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "config/config.h"

using namespace helios;
using namespace helios::config;

namespace {

std::string repo_path(const std::string& rel) {
  const std::string here = __FILE__;  // <repo>/tests/unit/control/config_examples_test.cpp
  const std::string root = here.substr(0, here.rfind("tests/unit/"));  // "" if __FILE__ is relative
  return (root.empty() ? "./" : root) + rel;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ParseOptions options(std::map<std::string, std::string> env = {},
                     std::map<std::string, std::string> files = {}) {
  ParseOptions o;
  o.getenv = [env](std::string_view n) -> std::optional<std::string> {
    auto it = env.find(std::string(n));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  o.read_file = [files](const std::string& p) -> Result<std::string> {
    auto it = files.find(p);
    if (it == files.end()) return Error{ENOENT, "No such file or directory"};
    return it->second;
  };
  o.os_user = [] { return std::string("proxyuser"); };
  return o;
}

Config load_ok(const std::string& rel, const ParseOptions& o) {
  Result<Config> c = load_config_file(repo_path(rel), o);
  if (!c) FAIL(c.error().message);
  return *c;
}

}  // namespace

TEST_CASE("seed 000 Example 1 loads as written, with its values") {
  const Config c = load_ok("config/examples/seed000-example1.toml",
                           options({}, {{"/etc/helios/db_password", "s3cret\n"}}));
  CHECK(c.proxy.listen_address == HostPort{"0.0.0.0", 5432});
  CHECK(c.proxy.admin_listen_address == HostPort{"127.0.0.1", 9090});
  CHECK(c.proxy.mode == PoolMode::kSession);
  CHECK(c.proxy.log_level == LogLevel::kInfo);
  CHECK(c.backend.host == "localhost");
  CHECK(c.backend.port == 5433);
  CHECK(c.backend.database == "saas_platform_db");
  CHECK(c.backend.user == "helios_app");
  CHECK(c.backend.password == "s3cret");
  CHECK(c.backend.min_connections == 20);
  CHECK(c.backend.max_connections == 100);
  CHECK(c.backend.connection_timeout == 5 * kNanosPerSec);
  CHECK(c.connection_pool.multiplexing_ratio == 100);
  CHECK(c.connection_pool.idle_timeout == 600 * kNanosPerSec);
  CHECK(c.connection_pool.max_client_connections == 10000);
  CHECK(c.connection_pool.acquire_timeout == 3 * kNanosPerSec);
  CHECK(c.auth.auth_user == "helios_app");
  CHECK(c.auth.auth_password == "s3cret");
  CHECK(c.auth.auth_database == "saas_platform_db");
  CHECK(c.tenant_quotas.enabled);
  CHECK(c.tenant_quotas.identifier.kind == TenantIdentifierKind::kApplicationName);
  REQUIRE(c.tenant_quotas.limits.size() == 2);
  const TenantRule& a = c.tenant_quotas.limits[0];
  CHECK(a.tenant_pattern == "tenant_*");
  CHECK(a.line == 28);
  CHECK(a.limits.max_connections == 50);
  CHECK(a.limits.max_qps == 1000);
  CHECK(a.limits.qps_burst == 1000);  // defaults to max_qps
  CHECK(a.limits.max_transaction_duration == 30 * kNanosPerSec);
  CHECK(a.limits.pool_mode == PoolMode::kSession);  // inherits [proxy] mode
  CHECK(a.limits.qps_max_wait == 100 * kNanosPerMilli);
  const TenantRule& b = c.tenant_quotas.limits[1];
  CHECK(b.tenant_pattern == "premium_tenant_*");
  CHECK(b.limits.max_connections == 200);
  CHECK(b.limits.max_qps == 5000);
  CHECK(b.limits.max_transaction_duration == 300 * kNanosPerSec);
  CHECK(c.metrics.enabled);
  CHECK(c.metrics.prometheus_port == 9091);
  CHECK(c.metrics.histogram_buckets ==
        std::vector<double>{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0});
  // 10000 clients over 100 backends is exactly the 100:1 target: nothing to warn about.
  CHECK(c.warnings.empty());
}

TEST_CASE("seed 000 Example 1 without its password file names the file and the line") {
  Result<Config> c =
      load_config_file(repo_path("config/examples/seed000-example1.toml"), options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message ==
        repo_path("config/examples/seed000-example1.toml") +
            ":12: [backend] password_file: cannot read \"/etc/helios/db_password\": No such file "
            "or directory");
}

TEST_CASE("the tutorial's [pool_mode] section loads and maps onto the canonical keys") {
  const Config c = load_ok("config/examples/tutorial-pool-mode.toml", options());
  CHECK(c.proxy.mode == PoolMode::kTransaction);
  CHECK(c.backend.max_connections == 100);
  CHECK(c.backend.min_connections == 10);
  CHECK(c.connection_pool.idle_timeout == 600 * kNanosPerSec);
  CHECK(c.backend.max_lifetime == 3600 * kNanosPerSec);
  CHECK(c.connection_pool.acquire_timeout == 5 * kNanosPerSec);
  CHECK(c.connection_pool.server_reset_query == "DISCARD ALL");
  CHECK(c.connection_pool.prepared_statement_mode == PreparedStatementMode::kTrack);
  // No auth user anywhere: libpq's default (the OS user) is used, and the user is told.
  CHECK(c.auth.auth_user == "proxyuser");
  REQUIRE(c.warnings.size() == 1);
  CHECK(c.warnings[0].find("auth_query runs as \"proxyuser\"") != std::string::npos);
}

TEST_CASE("the tutorial's troubleshooting snippet maps statement_timeout_secs") {
  Result<Config> c =
      parse_config("[pool_mode]\nmax_pool_size = 200\nstatement_timeout_secs = 30\n", options());
  REQUIRE(c.ok());
  CHECK(c->backend.max_connections == 200);
  CHECK(c->connection_pool.statement_timeout == 30 * kNanosPerSec);
}

TEST_CASE("seed 000 Examples 2, 3 and 4 load with their values") {
  ParseOptions o = options({{"PGUSER", "envuser"}});
  const Config e2 = load_ok("config/examples/seed000-example2.toml", o);
  CHECK(e2.proxy.mode == PoolMode::kTransaction);
  CHECK(e2.backend.host == "helios-db");
  CHECK(e2.backend.port == 5433);
  CHECK(e2.backend.min_connections == 10);
  CHECK(e2.backend.max_connections == 50);
  CHECK(e2.connection_pool.multiplexing_ratio == 200);
  CHECK(e2.connection_pool.server_reset_query == "DISCARD ALL");
  CHECK(e2.auth.auth_user == "envuser");  // $PGUSER before the OS user

  const Config e3 = load_ok("config/examples/seed000-example3.toml", o);
  CHECK(e3.proxy.mode == PoolMode::kStatement);
  CHECK(e3.backend.port == 5432);
  CHECK(e3.backend.max_connections == 20);
  CHECK(e3.connection_pool.multiplexing_ratio == 500);
  CHECK(e3.connection_pool.server_reset_query == "DISCARD ALL; RESET ALL");
  CHECK(e3.connection_pool.statement_timeout == 30 * kNanosPerSec);

  const Config e4 = load_ok("config/examples/seed000-example4.toml", o);
  CHECK(e4.proxy.admin_listen_address == HostPort{"0.0.0.0", 9090});
  CHECK(e4.backend.host == "helios-db-primary.database.svc.cluster.local");
  CHECK(e4.backend.min_connections == 50);
  CHECK(e4.backend.max_connections == 200);
  CHECK(e4.backend.max_lifetime == 3600 * kNanosPerSec);  // connection_lifetime alias
  CHECK(e4.connection_pool.max_client_connections == 20000);
  REQUIRE(e4.tenant_quotas.limits.size() == 2);
  CHECK(e4.tenant_quotas.limits[1].tenant_pattern == "enterprise_*");
  CHECK(e4.tenant_quotas.limits[1].limits.max_connections == 500);
  CHECK(e4.tenant_quotas.limits[1].limits.max_qps == 10000);
  // Its admin API listens on every interface without a token: worth a warning.
  bool warned = false;
  for (const std::string& w : e4.warnings) {
    warned |= w.find(
                  ":5: [proxy] admin_listen_address 0.0.0.0:9090 is not loopback and [admin] "
                  "has no token") != std::string::npos;
  }
  CHECK(warned);
}

TEST_CASE("seed 003's tiers load as a proxy config and fit the budget") {
  const Config c = load_ok("config/examples/tiers.toml", options({{"HELIOS_DB_PASSWORD", "pw"}}));
  REQUIRE(c.tiers.size() == 3);
  const TierConfig* premium = c.find_tier("premium");
  REQUIRE(premium != nullptr);
  CHECK(premium->mode == TierMode::kDedicated);
  CHECK(premium->pool_size == 6);
  CHECK(premium->expected_tenants == 20);
  CHECK(premium->weight == 4);
  CHECK(premium->peak_qps == 120);
  CHECK(premium->mean_service_s == doctest::Approx(0.025));
  const TierConfig* standard = c.find_tier("standard");
  REQUIRE(standard != nullptr);
  CHECK(standard->mode == TierMode::kShared);
  CHECK(standard->pool_size == 18);
  CHECK(c.find_tier("free")->pool_size == 16);
  CHECK(c.backend.password == "pw");

  const ConnectionBudget b = compute_connection_budget(c);
  CHECK(b.needed == 6 * 20 + 18 + 16 + 20);
  CHECK(b.available() == 180);
  CHECK(b.fits());
  CHECK(b.summary() == "pools need 174 of 180 connections (200 - 20 reserved)");

  // Rules inherit their tier's weight and pool mode; unmatched tenants fall into "free".
  REQUIRE(c.tenant_quotas.limits.size() == 3);
  CHECK(c.tenant_quotas.limits[0].limits.tier == "premium");
  CHECK(c.tenant_quotas.limits[0].limits.weight == 4);
  CHECK(c.tenant_quotas.default_limits.tier == "free");
  CHECK(c.tenant_quotas.default_limits.weight == 1);
  CHECK(c.warnings.empty());
}

TEST_CASE("the reference config loads and states exactly the built-in defaults") {
  const ParseOptions o = options();
  const Config reference = load_ok("config/helios-proxy.toml", o);
  Result<Config> empty = parse_config("", o);
  REQUIRE(empty.ok());
  CHECK(reference == *empty);
  // And the built-in defaults are the ones the structs declare.
  Config declared;
  declared.auth = reference.auth;  // resolved from [backend] and the OS user
  declared.tenant_quotas.identifier = reference.tenant_quotas.identifier;
  declared.tenant_quotas.default_limits = reference.tenant_quotas.default_limits;
  CHECK(declared == reference);
  CHECK(reference.tenant_quotas.default_limits.qps_max_wait == 100 * kNanosPerMilli);
  CHECK(reference.tenant_quotas.default_limits.weight == 1);
}

TEST_CASE("the reference config's commented example rule and tier load when uncommented") {
  std::istringstream in(slurp(repo_path("config/helios-proxy.toml")));
  std::string text;
  bool in_example = false;
  int uncommented = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# --- example", 0) == 0) {
      in_example = true;
    } else if (line.rfind("# --- end example", 0) == 0) {
      in_example = false;
    } else if (in_example && line.rfind("# ", 0) == 0) {
      line = line.substr(2);
      ++uncommented;
    }
    text += line + "\n";
  }
  CHECK(uncommented > 20);
  Result<Config> c = parse_config(text, options());
  if (!c) FAIL(c.error().message);
  REQUIRE(c->tenant_quotas.limits.size() == 1);
  const TenantLimits& l = c->tenant_quotas.limits[0].limits;
  CHECK(l.tier == "premium");
  CHECK(l.pool_mode == PoolMode::kSession);
  CHECK(l.data_path == DataPathMode::kAuto);
  CHECK(l.qps_max_wait == 250 * kNanosPerMilli);
  REQUIRE(l.edge_cidrs.size() == 2);
  CHECK(l.edge_cidrs[0].to_string() == "10.1.0.0/16");
  CHECK(l.edge_cidrs[1].to_string() == "2001:db8:1::/48");
  REQUIRE(c->find_tier("premium") != nullptr);
  CHECK(c->find_tier("premium")->expected_tenants == 20);
}
