// Inputs the config fuzzer (fuzz/config_fuzz.cpp) found. Most reach undefined behaviour inside
// toml++ 3.3.0 when its headers are compiled with assertions: the release library the proxy links
// must refuse each with a clean "file:line: TOML syntax error", never crash.
//   - a table header whose first character cannot start a key: parse_key()'s
//     TOML_ASSERT_ASSUME (marzer/tomlplusplus issue 294, fixed upstream by pull request 301);
//   - a non-ASCII character where whitespace may stand (U+0370..U+0499 reach TOML_UNREACHABLE in
//     is_non_ascii_horizontal_whitespace).
#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "config/config.h"

using namespace helios;
using namespace helios::config;

namespace {

std::string syntax_error(std::string_view toml) {
  Result<Config> c = parse_config(toml, "proxy.toml",
                                  [](std::string_view) { return std::optional<std::string>(); });
  REQUIRE_FALSE(c.ok());
  return c.error().message;
}

}  // namespace

TEST_CASE("a table header that cannot start with a key is a syntax error on its line") {
  for (std::string_view toml :
       {std::string_view("[proxy]\nmode = \"session\"\n[#a]\n"), std::string_view("[=a]\n"),
        std::string_view("[,a]\n"), std::string_view("[[\x01]]\n"),
        std::string_view("[proxy]\n[\0onnection_pool]\n", 26)}) {
    CAPTURE(toml);
    const std::string m = syntax_error(toml);
    CHECK(m.starts_with("proxy.toml:"));
    CHECK(m.find("TOML syntax error") != std::string::npos);
  }
  CHECK(syntax_error("[proxy]\nmode = \"session\"\n[#a]\n").starts_with("proxy.toml:3:"));
}

TEST_CASE("a non-ASCII character where whitespace may stand is a syntax error on its line") {
  for (std::string_view toml : {std::string_view("a = 1 \xce\xbb\n"),
                                std::string_view("[proxy]\nmode = \"session\" \xce\xbb\n"),
                                std::string_view("[proxy]\n\xcd\xb0 = 1\n")}) {
    CAPTURE(toml);
    const std::string m = syntax_error(toml);
    CHECK(m.starts_with("proxy.toml:"));
    CHECK(m.find("TOML syntax error") != std::string::npos);
  }
}

TEST_CASE("a syntax error that quotes a newline or control character stays one line") {
  // Found by the config fuzzer: toml++ says "saw 'fals<newline>'", which split the message.
  std::string m = syntax_error("[proxy]\nsame_host_bypass = fals\n[backend]\n");
  CHECK(m.find('\n') == std::string::npos);
  CHECK(m.starts_with("proxy.toml:2: TOML syntax error"));
  CHECK(m.find("\\n") != std::string::npos);
  m = syntax_error(std::string_view("a = tru\x01\n", 9));
  CHECK(m.find('\x01') == std::string::npos);
}

TEST_CASE("every config error is one line, whatever config text it quotes") {
  // Found by the config fuzzer: an unset ${NAME} whose name holds an escaped newline.
  Result<Config> c = parse_config("[backend]\nuser = \"${A\\nB}\"\n\"k\\ney\" = 1\n", "proxy.toml",
                                  [](std::string_view) { return std::optional<std::string>(); });
  REQUIRE_FALSE(c.ok());
  const std::string& m = c.error().message;
  size_t lines = 0;
  for (size_t start = 0; start < m.size();) {
    size_t end = m.find('\n', start);
    CHECK(m.compare(start, 11, "proxy.toml:") == 0);
    ++lines;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  CHECK(lines == 2);  // the unset variable and the unknown key
  CHECK(m.find("A\\nB") != std::string::npos);
}
