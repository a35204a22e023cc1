#include <doctest/doctest.h>

#include "config/duration.h"

using namespace helios;
using namespace helios::config;

TEST_CASE("durations parse with units and combinations") {
  CHECK(*parse_duration("250ms") == 250 * kNanosPerMilli);
  CHECK(*parse_duration("5s") == 5 * kNanosPerSec);
  CHECK(*parse_duration("10m") == 600 * kNanosPerSec);
  CHECK(*parse_duration("1h") == 3600 * kNanosPerSec);
  CHECK(*parse_duration("1h30m") == 5400 * kNanosPerSec);
  CHECK(*parse_duration("1m30s500ms") == 90 * kNanosPerSec + 500 * kNanosPerMilli);
  CHECK(*parse_duration("1.5s") == 1500 * kNanosPerMilli);
  CHECK(*parse_duration("0.25h") == 900 * kNanosPerSec);
  CHECK(*parse_duration("100us") == 100 * kNanosPerMicro);
  CHECK(*parse_duration("7ns") == 7);
  CHECK(*parse_duration("2d") == 2 * 86400 * kNanosPerSec);
  CHECK(*parse_duration("0") == 0);
  CHECK(*parse_duration("0s") == 0);
}

TEST_CASE("bad durations say what is wrong") {
  Result<Nanos> r = parse_duration("5");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("missing unit after 5") != std::string::npos);

  r = parse_duration("5sec");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("unknown unit \"sec\"") != std::string::npos);

  CHECK_FALSE(parse_duration("").ok());
  CHECK_FALSE(parse_duration("-5s").ok());
  CHECK_FALSE(parse_duration("5 s").ok());
  CHECK_FALSE(parse_duration("s").ok());
  CHECK_FALSE(parse_duration("1h 30m").ok());
  CHECK_FALSE(parse_duration("99999999999999999999s").ok());
  CHECK_FALSE(parse_duration("300000000000h").ok());  // overflows int64 nanoseconds
}

TEST_CASE("durations format back into the same syntax") {
  CHECK(format_duration(0) == "0s");
  CHECK(format_duration(5400 * kNanosPerSec) == "1h30m");
  CHECK(format_duration(90 * kNanosPerSec) == "1m30s");
  CHECK(format_duration(250 * kNanosPerMilli) == "250ms");
  CHECK(format_duration(1500 * kNanosPerMilli) == "1500ms");
  CHECK(format_duration(1500) == "1500ns");
  for (const char* text : {"1h30m", "250ms", "10m", "3h", "1h1m1s", "17us"}) {
    CHECK(format_duration(*parse_duration(text)) == text);
  }
}
