// The config loader on arbitrary TOML text (no file I/O: environment and secret files come from
// fixed stand-ins). Never crashes or throws; an error message names the source on every line; a
// config it accepts equals itself, passes or fails check_serving() without crashing, and loads
// again from the same text to an equal Config.
//
// toml++ is the release library the proxy links (pkg-config tomlplusplus). Its 3.3.0 headers
// compiled with assertions abort on a table header whose first character cannot start a key
// ("[#a]": marzer/tomlplusplus issue 294, fixed upstream by pull request 301) and on non-ASCII
// characters where whitespace may stand ("x = 1 \u03bb", is_non_ascii_horizontal_whitespace);
// the release library answers both with a clean syntax error
// (tests/unit/control/config_toml_regressions_test.cpp).
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"

using namespace helios;
using namespace helios::config;

namespace {

ParseOptions options() {
  ParseOptions o;
  o.source_name = "fuzz.toml";
  o.getenv = [](std::string_view name) -> std::optional<std::string> {
    if (name == "PGPASS") return std::string("secret");
    if (name == "EMPTY") return std::string();
    return std::nullopt;
  };
  o.read_file = [](const std::string& path) -> Result<std::string> {
    if (path.find("missing") != std::string::npos) return Error{ENOENT, "No such file"};
    return std::string("first line\nsecond line\n");
  };
  o.base_dir = "/etc/helios/";
  o.os_user = [] { return std::string("helios"); };
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ParseOptions opts = options();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = parse_config(text, opts);
  if (!config) {
    const std::string& m = config.error().message;
    if (m.empty()) __builtin_trap();
    size_t start = 0;
    while (start <= m.size()) {
      size_t end = m.find('\n', start);
      if (m.compare(start, 9, "fuzz.toml") != 0) __builtin_trap();
      if (end == std::string::npos) break;
      start = end + 1;
    }
    return 0;
  }
  if (!(*config == *config)) __builtin_trap();
  (void)check_serving(*config, nullptr);
  (void)check_serving(*config, &*config);
  (void)compute_connection_budget(*config);
  auto again = parse_config(text, opts);
  if (!again || !(*again == *config)) __builtin_trap();
  return 0;
}
