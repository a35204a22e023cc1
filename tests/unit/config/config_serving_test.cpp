// check_serving: the gate a config passes before the proxy starts or reloads with it.
#include <doctest/doctest.h>

#include <string>

#include "config/config.h"

using namespace helios;
using namespace helios::config;

TEST_CASE("check_serving refuses an empty file, and a reload that drops [backend] or listen") {
  ParseOptions o;
  o.source_name = "proxy.toml";
  o.os_user = [] { return std::string("me"); };
  o.resolve_secrets = false;
  auto full =
      parse_config("[proxy]\nlisten_address = \"127.0.0.1:6432\"\n[backend]\nhost = \"db\"\n", o);
  REQUIRE(full.ok());
  CHECK(check_serving(*full, nullptr).ok());
  CHECK(check_serving(*full, &*full).ok());

  auto empty = parse_config("# nothing but a comment\n\n", o);
  REQUIRE(empty.ok());
  Status s = check_serving(*empty, nullptr);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message.rfind("proxy.toml: the file has no settings", 0) == 0);

  auto no_backend = parse_config("[proxy]\nlisten_address = \"127.0.0.1:6432\"\n", o);
  REQUIRE(no_backend.ok());
  CHECK(check_serving(*no_backend, nullptr).ok());  // at start the defaults may be meant
  s = check_serving(*no_backend, &*full);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message.find("no [backend] section") != std::string::npos);

  auto no_listen = parse_config("[backend]\nhost = \"db\"\n", o);
  REQUIRE(no_listen.ok());
  s = check_serving(*no_listen, &*full);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message.find("no [proxy] listen_address") != std::string::npos);
}
