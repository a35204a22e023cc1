#include <doctest/doctest.h>

#include "session/session_probe.h"

using namespace helios::session;

namespace {
using Row = std::vector<std::optional<std::string_view>>;

ParamSet set_of(ParamPairs p) {
  return ParamSet(std::move(p));
}
}  // namespace

TEST_CASE("the probe's rows are read into its answer") {
  SessionProbeAnswer a;
  CHECK(add_probe_row(a, Row{"s", "timezone", "America/New_York", "Etc/UTC"}));
  CHECK(add_probe_row(a, Row{"l", std::nullopt, "2", std::nullopt}));
  CHECK(add_probe_row(a, Row{"t", std::nullopt, "0", std::nullopt}));
  CHECK(add_probe_row(a, Row{"n", "chan", std::nullopt, std::nullopt}));
  CHECK(add_probe_row(a, Row{"p", "q", std::nullopt, std::nullopt}));
  CHECK(add_probe_row(a, Row{"c", "cur", std::nullopt, std::nullopt}));
  REQUIRE(a.settings.size() == 1);
  CHECK(a.settings[0].name == "timezone");
  CHECK(a.settings[0].value == "America/New_York");
  CHECK(a.settings[0].reset == "Etc/UTC");
  CHECK(a.advisory_locks == 2);
  CHECK(a.temp_objects == 0);
  CHECK(a.listening == std::vector<std::string>{"chan"});
  CHECK(a.sql_prepared == std::vector<std::string>{"q"});
  CHECK(a.hold_cursors == std::vector<std::string>{"cur"});
  CHECK_FALSE(add_probe_row(a, Row{"x", "a", "b", "c"}));
  CHECK_FALSE(add_probe_row(a, Row{"l", std::nullopt, "many", std::nullopt}));
  CHECK_FALSE(add_probe_row(a, Row{"s", "timezone"}));
  CHECK(!session_probe_sql().empty());
}

TEST_CASE("adopted settings: session values carried, defaults dropped, RESET to startup") {
  SessionProbeAnswer a;
  a.settings.push_back({"search_path", "s1", "\"$user\", public"});
  a.settings.push_back({"timezone", "Etc/UTC", "Etc/UTC"});  // the proxy restored the default
  a.settings.push_back({"enable_seqscan", "off", "on"});     // not carried: pins
  a.settings.push_back({"work_mem", "4096", "4096"});        // carried, at its default
  auto startup = set_of({{"datestyle", config_value("ISO, DMY")}});
  auto current = set_of({{"app.tenant", sql_text_value("'acme'")},
                         {"datestyle", config_value("ISO, DMY")},
                         {"statement_timeout", sql_text_value("'5s'")}});
  auto got = adopt_settings(a, &startup, &current, {});
  // datestyle: no row (the client RESET it): back to its startup value.
  CHECK(*find_param(got.params, "datestyle") == config_value("ISO, DMY"));
  CHECK(*find_param(got.params, "search_path") == config_value("s1"));
  CHECK(find_param(got.params, "timezone") == nullptr);
  CHECK(find_param(got.params, "work_mem") == nullptr);
  CHECK(find_param(got.params, "statement_timeout") == nullptr);  // gone from the session
  CHECK(*find_param(got.params, "app.tenant") == sql_text_value("'acme'"));  // not listed: kept
  CHECK(got.untracked == std::vector<std::string>{"enable_seqscan"});
}

TEST_CASE("a startup parameter the session holds at the server's default is kept") {
  SessionProbeAnswer a;
  a.settings.push_back({"timezone", "Etc/UTC", "Etc/UTC"});
  auto startup = set_of({{"timezone", config_value("Asia/Tokyo")}});
  auto got = adopt_settings(a, &startup, &startup, {});
  CHECK(*find_param(got.params, "timezone") == config_value("Etc/UTC"));
}
