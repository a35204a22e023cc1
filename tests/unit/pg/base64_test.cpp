#include <doctest/doctest.h>

#include "pg/base64.h"

using namespace helios::pg;

TEST_CASE("base64 encodes RFC 4648 test vectors and decodes them back") {
  const std::pair<std::string_view, std::string_view> vectors[] = {{"", ""},
                                                                   {"f", "Zg=="},
                                                                   {"fo", "Zm8="},
                                                                   {"foo", "Zm9v"},
                                                                   {"foob", "Zm9vYg=="},
                                                                   {"fooba", "Zm9vYmE="},
                                                                   {"foobar", "Zm9vYmFy"}};
  for (const auto& [raw, b64] : vectors) {
    CAPTURE(raw);
    CHECK(base64_encode(raw) == b64);
    auto back = base64_decode(b64);
    REQUIRE(back.has_value());
    CHECK(*back == raw);
  }
  const std::string binary("\x00\xff\x10\x80", 4);
  auto back = base64_decode(base64_encode(binary));
  REQUIRE(back.has_value());
  CHECK(*back == binary);
}

TEST_CASE("base64_decode is strict") {
  for (std::string_view bad : {"Zg=", "Zg", "Z===", "====", "Zm9v\n", " Zm9v", "Zm 9v", "Zm9*",
                               "Z=g=", "=Zm8", "Zm9vYg=a"}) {
    CAPTURE(bad);
    CHECK_FALSE(base64_decode(bad).has_value());
  }
}
