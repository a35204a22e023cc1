// [fleet]: the Redis URL, its secrets and the interval rules.
#include <doctest/doctest.h>

#include <map>

#include "config/config.h"

using namespace helios;
using namespace helios::config;

namespace {

ParseOptions options(std::map<std::string, std::string> vars = {}) {
  ParseOptions o;
  o.source_name = "proxy.toml";
  o.getenv = [vars](std::string_view n) -> std::optional<std::string> {
    auto it = vars.find(std::string(n));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  o.os_user = [] { return std::string("proxyuser"); };
  return o;
}

}  // namespace

TEST_CASE("redis URLs: user, password, host, port, db") {
  FleetConfig f;
  REQUIRE(parse_redis_url("redis://app:s3cret@redis.internal:6380/2", f).ok());
  CHECK(f.redis_user == "app");
  CHECK(f.redis_password == "s3cret");
  CHECK(f.redis_host == "redis.internal");
  CHECK(f.redis_port == 6380);
  CHECK(f.redis_db == 2);
  FleetConfig g;
  REQUIRE(parse_redis_url("redis://127.0.0.1", g).ok());
  CHECK(g.redis_port == 6379);
  CHECK(g.redis_db == 0);
  FleetConfig h;
  REQUIRE(parse_redis_url("redis://[::1]:7000", h).ok());
  CHECK(h.redis_host == "::1");
  CHECK(h.redis_port == 7000);
  CHECK_FALSE(parse_redis_url("http://x", h).ok());
  CHECK_FALSE(parse_redis_url("redis://x:99999", h).ok());
  CHECK_FALSE(parse_redis_url("redis://:1", h).ok());
}

TEST_CASE("[fleet] absent: nothing changes; present: defaults and ${ENV} password") {
  auto plain = parse_config("[backend]\nuser = \"u\"\n", options());
  REQUIRE(plain.ok());
  CHECK_FALSE(plain->fleet.enabled);
  auto c = parse_config(
      "[fleet]\nredis_url = \"redis://127.0.0.1:7001\"\nredis_password = \"${REDIS_PW}\"\n",
      options({{"REDIS_PW", "pw"}}));
  REQUIRE(c.ok());
  CHECK(c->fleet.enabled);
  CHECK(c->fleet.redis_port == 7001);
  CHECK(c->fleet.redis_password == "pw");
  CHECK_FALSE(c->fleet.instance_id.empty());  // host name and pid
}

TEST_CASE("rediss:// turns on TLS to Redis; its CA file and verification are read") {
  auto c = parse_config(
      "[fleet]\nredis_url = \"rediss://u:pw@redis.internal:6380/2\"\n"
      "redis_tls_ca_file = \"/etc/ssl/redis-ca.pem\"\n",
      options());
  REQUIRE(c.ok());
  CHECK(c->fleet.redis_tls);
  CHECK(c->fleet.redis_tls_verify);
  CHECK(c->fleet.redis_host == "redis.internal");
  CHECK(c->fleet.redis_port == 6380);
  CHECK(c->fleet.redis_db == 2);
  CHECK(c->fleet.redis_user == "u");
  CHECK(c->fleet.redis_tls_ca_file == "/etc/ssl/redis-ca.pem");
  auto plain = parse_config("[fleet]\nredis_url = \"redis://r:1\"\n", options());
  REQUIRE(plain.ok());
  CHECK_FALSE(plain->fleet.redis_tls);
  // A CA file without TLS is a mistake, named with its line.
  auto stray = parse_config(
      "[fleet]\nredis_url = \"redis://r:1\"\nredis_tls_ca_file = \"/x.pem\"\n", options());
  REQUIRE_FALSE(stray.ok());
  CHECK(stray.error().message.find("proxy.toml:3") != std::string::npos);
  CHECK(stray.error().message.find("not rediss://") != std::string::npos);
  auto other = parse_config("[fleet]\nredis_url = \"http://r:1\"\n", options());
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().message.find("redis[s]://") != std::string::npos);
}

TEST_CASE("[fleet] interval rules") {
  auto c = parse_config(
      "[fleet]\nredis_url = \"redis://r\"\nrenew_interval = \"1s\"\ninstance_ttl = \"1s\"\n",
      options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message.find("instance_ttl") != std::string::npos);
  auto none = parse_config("[fleet]\ninstance_id = \"a\"\n", options());
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().message.find("redis_url is required") != std::string::npos);
}

TEST_CASE("[fleet] cancel_address: unset by default (the listen address), host:port when set") {
  auto d = parse_config("[fleet]\nredis_url = \"redis://r\"\n", options());
  REQUIRE(d.ok());
  CHECK(d->fleet.cancel_address.host.empty());
  CHECK(d->fleet.cancel_address.port == 0);
  auto c = parse_config("[fleet]\nredis_url = \"redis://r\"\ncancel_address = \"10.0.0.5:6433\"\n",
                        options());
  REQUIRE(c.ok());
  CHECK(c->fleet.cancel_address.host == "10.0.0.5");
  CHECK(c->fleet.cancel_address.port == 6433);
  auto bad =
      parse_config("[fleet]\nredis_url = \"redis://r\"\ncancel_address = \"nohost\"\n", options());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("cancel_address") != std::string::npos);
}
