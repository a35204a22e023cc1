#include <doctest/doctest.h>

#include <string>

#include "ops/label_value.h"

using helios::ops::sanitize_label_value;

TEST_CASE("sanitize_label_value: valid UTF-8 passes unchanged") {
  CHECK(sanitize_label_value("tenant_acme") == "tenant_acme");
  CHECK(sanitize_label_value("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") ==
        "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  CHECK(sanitize_label_value("") == "");
}

TEST_CASE("sanitize_label_value: invalid bytes and control characters become U+FFFD") {
  const std::string r = "\xEF\xBF\xBD";
  CHECK(sanitize_label_value("t\xFF") == "t" + r);
  CHECK(sanitize_label_value("\xC3(") == r + "(");                   // truncated sequence
  CHECK(sanitize_label_value("\xC0\xAF") == r + r);                  // overlong
  CHECK(sanitize_label_value("\xED\xA0\x80") == r + r + r);          // surrogate
  CHECK(sanitize_label_value("\xF4\x90\x80\x80") == r + r + r + r);  // past U+10FFFF
  CHECK(sanitize_label_value("a\nb\x01") == "a" + r + "b" + r);
  CHECK(sanitize_label_value(std::string("a\0b", 3)) == "a" + r + "b");
}

TEST_CASE("sanitize_label_value: capped without splitting a character") {
  std::string long_name(300, 'x');
  CHECK(sanitize_label_value(long_name).size() == helios::ops::kMaxLabelValueBytes);
  std::string e;
  for (int i = 0; i < 100; ++i) e += "\xC3\xA9";  // 2 bytes each
  std::string out = sanitize_label_value("a" + e, 10);
  CHECK(out == "a\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9");  // 9 bytes: the 5th would split
}
