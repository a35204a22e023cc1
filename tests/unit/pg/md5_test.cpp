// PostgreSQL's md5 password scheme, against hashes stored by a real PostgreSQL 15.
#include <doctest/doctest.h>

#include <cctype>

#include "pg/md5.h"

using namespace helios;
using namespace helios::pg;

// pg_authid.rolpassword after SET password_encryption = 'md5'; CREATE ROLE ... PASSWORD ...
//   helios_md5 / 'secret'   and   O'Brien / 'pencil'
constexpr std::string_view kPgHelios = "md55e7702d380dcfec083320a7a777366ff";
constexpr std::string_view kPgObrien = "md5304c74231a8f6ac1a68dd4eecd14f36d";

TEST_CASE("md5_password_hash reproduces PostgreSQL's stored hashes") {
  CHECK(md5_password_hash("secret", "helios_md5") == kPgHelios);
  CHECK(md5_password_hash("pencil", "O'Brien") == kPgObrien);
  CHECK(md5_password_hash("secret", "helios_md6") != kPgHelios);  // the user is the salt
  CHECK(is_md5_hash(kPgHelios));
}

TEST_CASE("salted response and its verification") {
  const Md5Salt salt = {0x01, 0x02, 0x03, 0x04};
  // md5(hex_part + salt) computed independently (Python hashlib) for this stored hash and salt.
  auto r = md5_salted(kPgHelios, salt);
  REQUIRE(r.ok());
  CHECK(*r == "md55b70ce303e705e14142667dcc63bcf84");
  CHECK(verify_md5_response(kPgHelios, salt, *r));

  CHECK_FALSE(verify_md5_response(kPgHelios, {0x01, 0x02, 0x03, 0x05}, *r));  // other salt
  CHECK_FALSE(verify_md5_response(kPgObrien, salt, *r));                      // other user
  CHECK_FALSE(verify_md5_response(kPgHelios, salt, ""));
  CHECK_FALSE(verify_md5_response(kPgHelios, salt, r->substr(0, 34)));
  CHECK_FALSE(verify_md5_response(kPgHelios, salt, *r + "0"));
  std::string upper = *r;  // PostgreSQL compares exactly: upper-case hex is a different answer
  for (size_t i = 3; i < upper.size(); ++i) upper[i] = char(std::toupper(upper[i]));
  REQUIRE(upper != *r);
  CHECK_FALSE(verify_md5_response(kPgHelios, salt, upper));
  // The plaintext password is never an acceptable response.
  CHECK_FALSE(verify_md5_response(kPgHelios, salt, "secret"));
}

TEST_CASE("a client computing the response from the plaintext matches the stored-hash path") {
  // What libpq does: md5(md5(password + user) hex + salt).
  const Md5Salt salt = {0xde, 0xad, 0xbe, 0xef};
  auto from_password = md5_salted(md5_password_hash("pencil", "O'Brien"), salt);
  REQUIRE(from_password.ok());
  CHECK(verify_md5_response(kPgObrien, salt, *from_password));
}

TEST_CASE("is_md5_hash follows PostgreSQL's rule") {
  CHECK_FALSE(is_md5_hash(""));
  CHECK_FALSE(is_md5_hash("md5"));
  CHECK_FALSE(is_md5_hash("md55E7702D380DCFEC083320A7A777366FF"));  // upper case hex
  CHECK_FALSE(is_md5_hash("md55e7702d380dcfec083320a7a777366f"));   // 31 digits
  CHECK_FALSE(is_md5_hash("md55e7702d380dcfec083320a7a777366ff0"));
  CHECK_FALSE(is_md5_hash("MD55e7702d380dcfec083320a7a777366ff"));
  CHECK_FALSE(is_md5_hash("md55e7702d380dcfec083320a7a777366fg"));
  auto bad = md5_salted("plaintext", {1, 2, 3, 4});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == EINVAL);
}

TEST_CASE("random salts differ") {
  auto a = random_md5_salt();
  auto b = random_md5_salt();
  auto c = random_md5_salt();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(c.ok());
  CHECK_FALSE((*a == *b && *b == *c));  // 2^-64 chance of a false failure
}
