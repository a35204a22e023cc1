#include <doctest/doctest.h>

#include "config/config.h"

using namespace helios::config;

namespace {
ParseOptions opts() {
  ParseOptions o;
  o.source_name = "test.toml";
  o.getenv = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  o.os_user = [] { return std::string("proxyuser"); };
  return o;
}
}  // namespace

TEST_CASE("[backend] hosts: parsed, exclusive with host/port, budget per host") {
  auto c = parse_config(R"(
[backend]
hosts = ["db1:5432", "10.0.0.2:5433"]
db_max_connections = 100
max_connections = 20
health_check_interval = "200ms"
failover_timeout = "2s"
[routing]
read_write_split = true
)",
                        opts());
  REQUIRE(c);
  REQUIRE(c->backend.hosts.size() == 2);
  CHECK(c->backend.host == "db1");
  CHECK(c->backend.hosts[1].port == 5433);
  CHECK(c->backend.health_check_interval == 200 * helios::kNanosPerMilli);
  CHECK(c->routing.read_write_split);
  CHECK(c->routing.read_your_writes);
  const ConnectionBudget b = compute_connection_budget(*c);
  CHECK(b.needed == 21);  // default pool 20 + 1 health-check connection, on every host
  CHECK(b.breakdown().find("health check (per host; 2 hosts") != std::string::npos);

  CHECK_FALSE(parse_config("[backend]\nhost = \"a\"\nhosts = [\"b:1\"]\n", opts()));
  CHECK_FALSE(parse_config("[backend]\nhosts = []\n", opts()));
  CHECK_FALSE(parse_config("[backend]\nhosts = [\"a:1\", \"a:1\"]\n", opts()));
  auto one = parse_config("[backend]\nhost = \"x\"\nport = 6000\n", opts());
  REQUIRE(one);
  CHECK(one->backend.hosts.empty());
  CHECK(one->backend.host_list().size() == 1);
  CHECK(one->backend.host_list()[0].port == 6000);
}
