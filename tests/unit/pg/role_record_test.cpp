// Reading auth_query rows: columns by name or by position, VALID UNTIL as PostgreSQL prints it.
#include <doctest/doctest.h>

#include <limits>

#include "pg/role_record.h"

using namespace helios;
using namespace helios::pg;

namespace {
constexpr int64_t kUs = 1000000;
const std::string kMd5 = "md5" + std::string(32, 'a');
}  // namespace

TEST_CASE("valid-until times as PostgreSQL prints them (DateStyle ISO)") {
  CHECK(parse_valid_until("1970-01-01 00:00:00+00")->value() == 0);
  CHECK(parse_valid_until("2030-01-02 03:04:05+00")->value() == 1893553445 * kUs);
  CHECK(parse_valid_until("2030-01-02 03:04:05.25+00")->value() == 1893553445 * kUs + 250000);
  // Offsets: the same instant however the session's TimeZone printed it.
  CHECK(parse_valid_until("2030-01-02 05:04:05+02")->value() == 1893553445 * kUs);
  CHECK(parse_valid_until("2030-01-02 08:34:05+05:30")->value() == 1893553445 * kUs);
  CHECK(parse_valid_until("2030-01-01 23:04:05-04")->value() == 1893553445 * kUs);
  CHECK(parse_valid_until("2030-01-02T03:04:05+00")->value() == 1893553445 * kUs);
  CHECK_FALSE(parse_valid_until("infinity")->has_value());
  CHECK(parse_valid_until("-infinity")->value() == std::numeric_limits<int64_t>::min());
  CHECK(parse_valid_until("0044-03-15 00:00:00+00 BC")->value() ==
        std::numeric_limits<int64_t>::min());
  CHECK(parse_valid_until("1893553445")->value() == 1893553445 * kUs);
  CHECK_FALSE(parse_valid_until("next tuesday"));
  CHECK_FALSE(parse_valid_until("2030-01-02 03:04:05+00 garbage"));
}

TEST_CASE("expired: strictly before now, to the microsecond") {
  RoleRecord r;
  CHECK_FALSE(r.expired(0));
  r.valid_until = 10 * kUs;
  CHECK_FALSE(r.expired(10 * kUs));
  CHECK(r.expired(10 * kUs + 1));
}

TEST_CASE("auth_query rows read by column name") {
  std::vector<std::string> cols = {"rolname", "rolpassword", "rolvaliduntil", "rolcanlogin"};
  auto r = role_from_row(cols, {"alice", kMd5, "2030-01-02 03:04:05+00", "f"});
  REQUIRE(r);
  CHECK(std::holds_alternative<Md5Credential>(*r->secret));
  CHECK(r->valid_until == 1893553445 * kUs);
  CHECK_FALSE(r->can_login);

  // Any order; the pg_shadow-style names; NULLs mean "no limit" and "may log in".
  auto s = role_from_row({"canlogin", "usename", "valuntil", "passwd"},
                         {"t", "bob", std::nullopt, "secret"});
  REQUIRE(s);
  CHECK(std::get<PlainCredential>(*s->secret).password == "secret");
  CHECK_FALSE(s->valid_until);
  CHECK(s->can_login);

  // A NULL password: a role that cannot log in with a password.
  auto n = role_from_row({"usename", "passwd"}, {"carol", std::nullopt});
  REQUIRE(n);
  CHECK_FALSE(n->secret);
}

TEST_CASE("auth_query rows read by position when no password column is named") {
  auto two = role_from_row({"a", "b"}, {"alice", kMd5});
  REQUIRE(two);
  CHECK(two->secret);
  CHECK_FALSE(two->valid_until);
  CHECK(two->can_login);
  auto four = role_from_row({"a", "b", "c", "d"}, {"alice", kMd5, "-infinity", "false"});
  REQUIRE(four);
  CHECK(four->expired(0));
  CHECK_FALSE(four->can_login);
  CHECK_FALSE(role_from_row({"a"}, {"alice"}));
  CHECK_FALSE(role_from_row({"a", "b", "c"}, {"alice", kMd5, "soon"}));
}
