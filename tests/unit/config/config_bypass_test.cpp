// [proxy] same_host_bypass: "auto" (the default), true or false; anything else names file and line.
#include <doctest/doctest.h>

#include "config/config.h"

using namespace helios;
using namespace helios::config;

namespace {

GetEnv no_env() {
  return [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
}

Result<Config> parse(std::string_view toml) {
  return parse_config(toml, "proxy.toml", no_env());
}

}  // namespace

TEST_CASE("same_host_bypass: auto by default, and the booleans still work") {
  auto c = parse("[proxy]\nmode = \"session\"\n");
  REQUIRE(c.ok());
  CHECK(c->proxy.same_host_bypass == BypassSetting::kAuto);
  CHECK(to_string(c->proxy.same_host_bypass) == "auto");
  c = parse("[proxy]\nsame_host_bypass = \"auto\"\n");
  REQUIRE(c.ok());
  CHECK(c->proxy.same_host_bypass == BypassSetting::kAuto);
  c = parse("[proxy]\nsame_host_bypass = true\n");
  REQUIRE(c.ok());
  CHECK(c->proxy.same_host_bypass == BypassSetting::kOn);
  c = parse("[proxy]\nsame_host_bypass = false\n");
  REQUIRE(c.ok());
  CHECK(c->proxy.same_host_bypass == BypassSetting::kOff);
}

TEST_CASE("same_host_bypass: another string or type is refused with file and line") {
  auto c = parse("[proxy]\nmode = \"session\"\nsame_host_bypass = \"yes\"\n");
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message ==
        "proxy.toml:3: [proxy] same_host_bypass: must be true, false or \"auto\", got \"yes\"");
  c = parse("[proxy]\nsame_host_bypass = 1\n");
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message ==
        "proxy.toml:2: [proxy] same_host_bypass: expected true, false or \"auto\", got an integer");
}
