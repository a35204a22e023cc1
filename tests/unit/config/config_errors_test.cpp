// Every class of config error comes out as "file:line: what is wrong", and one load reports all
// of them.
#include <doctest/doctest.h>

#include <map>

#include "config/config.h"

using namespace helios;
using namespace helios::config;

namespace {

GetEnv env(std::map<std::string, std::string> vars = {}) {
  return [vars](std::string_view n) -> std::optional<std::string> {
    auto it = vars.find(std::string(n));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// The error text of a config that must be refused.
std::string refused(std::string_view toml, std::map<std::string, std::string> vars = {}) {
  Result<Config> c = parse_config(toml, "proxy.toml", env(std::move(vars)));
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code == EINVAL);
  return c.error().message;
}

}  // namespace

TEST_CASE("unknown key: line and did-you-mean") {
  CHECK(refused("[backend]\nhost = \"db\"\nmax_conections = 5\n") ==
        "proxy.toml:3: unknown key \"max_conections\" in [backend] (did you mean "
        "\"max_connections\"?)");
}

TEST_CASE("unknown key that belongs to another section says where") {
  CHECK(refused("[proxy]\nmode = \"session\"\nhost = \"db\"\n") ==
        "proxy.toml:3: unknown key \"host\" in [proxy] (it belongs in [backend])");
  CHECK(refused("mode = \"session\"\n") ==
        "proxy.toml:1: key \"mode\" is outside any section (it belongs in [pool_mode] or "
        "[proxy])");
}

TEST_CASE("unknown section: line and did-you-mean") {
  CHECK(refused("[proxy]\nmode = \"session\"\n\n[pool_mod]\nmode = \"session\"\n") ==
        "proxy.toml:4: unknown section [pool_mod] (did you mean [pool_mode]?)");
  CHECK(refused("[frobnicate]\nx = 1\n") == "proxy.toml:1: unknown section [frobnicate]");
}

TEST_CASE("a value outside its set lists the choices") {
  CHECK(refused("[proxy]\nlisten_address = \"0.0.0.0:5432\"\nmode = \"sesion\"\n") ==
        "proxy.toml:3: [proxy] mode must be one of \"session\", \"transaction\", \"statement\", "
        "got \"sesion\"");
  CHECK(refused("[backend]\nsslmode = \"verify_full\"\n") ==
        "proxy.toml:2: [backend] sslmode must be one of \"disable\", \"prefer\", \"require\", "
        "\"verify-full\", got \"verify_full\"");
}

TEST_CASE("wrong types name the expected and the actual type") {
  CHECK(refused("[backend]\nhost = \"db\"\n\n\n\n\n\n\nmax_connections = \"20\"\n") ==
        "proxy.toml:9: [backend] max_connections: expected an integer, got a string");
  CHECK(refused("[metrics]\nenabled = \"yes\"\n") ==
        "proxy.toml:2: [metrics] enabled: expected true or false, got a string");
  CHECK(refused("[connection_pool]\nacquire_timeout = true\n") ==
        "proxy.toml:2: [connection_pool] acquire_timeout: expected a duration (a string like "
        "\"5s\", \"250ms\", \"1h30m\", or integer seconds), got a boolean");
  CHECK(refused("[metrics]\nhistogram_buckets = [0.1, \"1s\"]\n") ==
        "proxy.toml:2: [metrics] histogram_buckets[1]: expected a number, got a string");
  CHECK(refused("[proxy]\nlisten_address = 5432\n") ==
        "proxy.toml:2: [proxy] listen_address: expected a string, got an integer");
  CHECK(refused("backend = 5\n") ==
        "proxy.toml:1: backend must be a section [backend], got an integer");
  CHECK(refused("[tenant_quotas.limits]\ntenant_pattern = \"a*\"\n") ==
        "proxy.toml:1: [tenant_quotas] limits: expected an array of tables ([[...]] sections), "
        "got a table");
  CHECK(refused("[tiers]\npremium = 6\n") ==
        "proxy.toml:2: [tiers] premium: a tier is a table: write [tiers.premium] with its keys, "
        "got an integer");
  CHECK(refused("[pool_mode]\nidle_timeout_secs = \"600s\"\n") ==
        "proxy.toml:2: [pool_mode] idle_timeout_secs: expected an integer, got a string");
}

TEST_CASE("out-of-range numbers") {
  CHECK(refused("[backend]\nport = 70000\n") ==
        "proxy.toml:2: [backend] port: must be between 1 and 65535, got 70000");
  CHECK(refused("[backend]\nmin_connections = -1\n") ==
        "proxy.toml:2: [backend] min_connections: must be between 0 and 10000000, got -1");
  CHECK(refused("[backend]\nlifetime_jitter = 1.0\n") ==
        "proxy.toml:2: [backend] lifetime_jitter: must be a fraction in [0, 1), got 1");
  CHECK(refused("[backend]\nmin_connections = 30\nmax_connections = 20\n") ==
        "proxy.toml:2: [backend] min_connections (30) must not exceed max_connections (20)");
  CHECK(refused("[metrics]\nhistogram_buckets = [0.1, 0.5, 0.5]\n") ==
        "proxy.toml:2: [metrics] histogram_buckets: must be strictly increasing (element 2 is not "
        "greater than element 1)");
  CHECK(refused("[connection_pool]\nidle_timeout = \"10 min\"\n") ==
        "proxy.toml:2: [connection_pool] idle_timeout: \"10 min\" is not a duration: missing unit "
        "after 10 (use ns, us, ms, s, m, h or d)");
  CHECK(refused("[proxy]\nreceive_buffers = 1000\n") ==
        "proxy.toml:2: [proxy] receive_buffers: 1000 must be a power of two");
  CHECK(refused("[proxy]\nreceive_buffers = 32\n") ==
        "proxy.toml:2: [proxy] receive_buffers: must be between 64 and 32768, got 32");
  CHECK(refused("[backend]\nconnection_timeout = -5\n")
            .find("proxy.toml:2: [backend] connection_timeout: a duration in seconds must be") ==
        0);
}

TEST_CASE("addresses") {
  CHECK(refused("[proxy]\nlisten_address = \"::1:5432\"\n") ==
        "proxy.toml:2: [proxy] listen_address: IPv6 addresses need brackets: \"[::1]:5432\"");
  CHECK(refused("[proxy]\nlisten_address = \"0.0.0.0\"\n") ==
        "proxy.toml:2: [proxy] listen_address: expected \"host:port\" (IPv6 as \"[::1]:5432\"), "
        "got \"0.0.0.0\"");
  CHECK(refused("[proxy]\nlisten_address = \"0.0.0.0:0\"\n") ==
        "proxy.toml:2: [proxy] listen_address: port must be between 1 and 65535, got \"0\"");
  CHECK(refused("[edge]\nvip = \"db.example:5432\"\n") ==
        "proxy.toml:2: [edge] vip: \"db.example\" is not an IP address");
  CHECK(refused("[proxy]\nlisten_address = \"0.0.0.0:9090\"\nadmin_listen_address = "
                "\"127.0.0.1:9090\"\n") ==
        "proxy.toml:3: [proxy] admin_listen_address 127.0.0.1:9090 uses the same port as "
        "listen_address 0.0.0.0:9090");
  CHECK(refused("[metrics]\nprometheus_port = 9090\n") ==
        "proxy.toml:2: [metrics] prometheus_port 9090 is also the admin_listen_address port (the "
        "admin API and Prometheus are separate listeners)");
  Result<Config> v6 = parse_config("[proxy]\nlisten_address = \"[::1]:6432\"\n", "p", env());
  REQUIRE(v6.ok());
  CHECK(v6->proxy.listen_address == HostPort{"::1", 6432});
  CHECK(v6->proxy.listen_address.to_string() == "[::1]:6432");
}

TEST_CASE("TOML syntax errors come out as file:line") {
  CHECK(refused("[proxy]\nmode = \"session\"\nlog_level = \"info\n")
            .find("proxy.toml:3: TOML syntax error: ") == 0);
  CHECK(refused("[proxy]\n\n\nmode = \n").find("proxy.toml:4: TOML syntax error: ") == 0);
  CHECK(
      refused("[proxy]\nmode = \"a\"\nmode = \"b\"\n").find("proxy.toml:3: TOML syntax error: ") ==
      0);
}

TEST_CASE("an unset ${VAR} names the rule and the line") {
  const std::string toml =
      "[tenant_quotas]\n"
      "enabled = true\n"
      "\n"
      "[[tenant_quotas.limits]]\n"
      "tenant_pattern = \"a_*\"\n"
      "\n"
      "[[tenant_quotas.limits]]\n"
      "tenant_pattern = \"b_*\"\n"
      "tier = \"${DB_PASS}\"\n";
  CHECK(refused(toml) ==
        "proxy.toml:9: [[tenant_quotas.limits]] #2: ${DB_PASS} is not set in the environment");
}

TEST_CASE("every error is reported in one pass, sorted by line") {
  const std::string toml =
      "[proxy]\n"
      "mode = \"sesion\"\n"
      "workers = \"four\"\n"
      "[backend]\n"
      "port = 0\n"
      "max_conections = 5\n"
      "[tiers.gold]\n"
      "mode = \"dedicated\"\n";
  const std::string message = refused(toml);
  CHECK(message ==
        "proxy.toml:2: [proxy] mode must be one of \"session\", \"transaction\", \"statement\", "
        "got \"sesion\"\n"
        "proxy.toml:3: [proxy] workers: expected an integer, got a string\n"
        "proxy.toml:5: [backend] port: must be between 1 and 65535, got 0\n"
        "proxy.toml:6: unknown key \"max_conections\" in [backend] (did you mean "
        "\"max_connections\"?)\n"
        "proxy.toml:7: [tiers.gold]: pool_size is required (per tenant for a dedicated tier, for "
        "the whole group for a shared tier)");
}

TEST_CASE("the tutorial form and the canonical form may not both set one thing") {
  const std::string toml =
      "[backend]\n"
      "max_connections = 50\n"
      "[pool_mode]\n"
      "max_pool_size = 100\n"
      "mode = \"session\"\n";
  CHECK(refused(toml) ==
        "proxy.toml:4: [pool_mode] max_pool_size (line 4) and [backend] max_connections (line 2) "
        "set the same thing; keep one");
  CHECK(refused("[proxy]\nmode = \"session\"\n[pool_mode]\nmode = \"statement\"\n") ==
        "proxy.toml:4: [pool_mode] mode (line 4) and [proxy] mode (line 2) set the same thing; "
        "keep one");
  CHECK(refused("[backend]\nconnection_lifetime = \"1h\"\n[pool_mode]\nmax_lifetime_secs = 60\n") ==
        "proxy.toml:4: [pool_mode] max_lifetime_secs (line 4) and [backend] connection_lifetime "
        "(line 2) set the same thing; keep one");
  CHECK(refused("[backend]\nmax_lifetime = \"1h\"\nconnection_lifetime = \"2h\"\n") ==
        "proxy.toml:3: [backend] connection_lifetime: is another name for max_lifetime (line 2); "
        "set only one of them");
}

TEST_CASE("not configurable and required keys") {
  CHECK(refused("[proxy]\nmax_startup_packet = 100000\n")
            .find("proxy.toml:2: [proxy] max_startup_packet: is not configurable") == 0);
  CHECK(refused("[tenant_quotas]\nenabled = true\n[[tenant_quotas.limits]]\nmax_qps = 5\n") ==
        "proxy.toml:3: [[tenant_quotas.limits]] #1: tenant_pattern is required (a glob such as "
        "\"tenant_*\")");
  CHECK(refused("[tenant_quotas]\nidentifier = \"app\"\n") ==
        "proxy.toml:2: [tenant_quotas] identifier: must be \"application_name\", \"user\", "
        "\"database\" or \"parameter:<startup parameter name>\", got \"app\"");
  CHECK(refused("[proxy]\ninstance = \"a/b\"\n")
            .find("proxy.toml:2: [proxy] instance: \"a/b\" must") == 0);
}

TEST_CASE("sections that need companions") {
  CHECK(refused("[edge]\nenabled = true\nvip = \"10.0.0.1:5432\"\n") ==
        "proxy.toml:2: [edge] enabled = true needs interface (the NIC to attach XDP to)");
  CHECK(refused("[tls]\nclient_tls_mode = \"require\"\n") ==
        "proxy.toml:2: [tls] client_tls_mode = \"require\" needs cert_file and key_file");
  CHECK(refused("[backend]\nsslmode = \"verify-full\"\n") ==
        "proxy.toml:2: [backend] sslmode = \"verify-full\" needs sslrootcert (the CA file that "
        "signed the server's certificate)");
}

TEST_CASE("with no auth_file the proxy needs a user for auth_query, and says how to give one") {
  ParseOptions o;
  o.source_name = "proxy.toml";
  o.getenv = env();
  o.os_user = [] { return std::string(); };  // no PGUSER, no OS user name
  Result<Config> c = parse_config("[proxy]\nmode = \"session\"\n[backend]\nhost = \"db\"\n", o);
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message.rfind("proxy.toml:3: [auth] type = \"scram-sha-256\" with no auth_file",
                                0) == 0);
  CHECK(c.error().message.find("Set [backend] user") != std::string::npos);
  CHECK(c.error().message.find("[auth] auth_file") != std::string::npos);
  // Any of the fixes it names works.
  CHECK(parse_config("[backend]\nuser = \"helios\"\n", o).ok());
  CHECK(parse_config("[auth]\nauth_user = \"helios\"\n", o).ok());
  CHECK(parse_config("[auth]\ntype = \"trust\"\n", o).ok());
}
