// Credentials from stored passwords, and the PgBouncer-style auth file.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "pg/auth_file.h"
#include "pg/credential.h"
#include "pg/md5.h"

using namespace helios;
using namespace helios::pg;

namespace {
constexpr std::string_view kScram =
    "SCRAM-SHA-256$4096:CCKKiLASDpVhWr0Ce7xRqg==$H9xkBRnZw1BJHWB0DKnPB+QCzyNWAXR1E6oqAwXIVwE=:"
    "GOG9BNRh0vlksJnl5Uk3jugXZsys1HfdT2MZ7ZB+NSw=";
constexpr std::string_view kMd5 = "md55e7702d380dcfec083320a7a777366ff";
}  // namespace

TEST_CASE("credential_from_stored classifies like PostgreSQL") {
  auto scram = credential_from_stored(kScram);
  REQUIRE(scram.ok());
  REQUIRE(std::holds_alternative<ScramCredential>(*scram));
  CHECK(std::get<ScramCredential>(*scram).secret.iterations == 4096);
  CHECK(credential_kind(*scram) == "scram-sha-256");

  auto md5 = credential_from_stored(kMd5);
  REQUIRE(md5.ok());
  REQUIRE(std::holds_alternative<Md5Credential>(*md5));
  CHECK(std::get<Md5Credential>(*md5).hash == kMd5);
  CHECK(credential_kind(*md5) == "md5");

  // Not quite md5 (upper case, wrong length): a plaintext password, as PostgreSQL decides.
  for (std::string_view plain : {"hunter2", "md5", "MD55e7702d380dcfec083320a7a777366ff",
                                 "md55e7702d380dcfec083320a7a777366f", "SCRAM-SHA-256"}) {
    CAPTURE(plain);
    auto c = credential_from_stored(plain);
    REQUIRE(c.ok());
    REQUIRE(std::holds_alternative<PlainCredential>(*c));
    CHECK(std::get<PlainCredential>(*c).password == plain);
    CHECK(credential_kind(*c) == "plain");
  }

  CHECK_FALSE(credential_from_stored("").ok());
  CHECK_FALSE(credential_from_stored("SCRAM-SHA-256$4096:broken").ok());
}

TEST_CASE("auth file: the three kinds of secret, quoting, comments") {
  const std::string text = std::string(
                               "; PgBouncer userlist\n"
                               "# another comment style\n"
                               "\n"
                               "\"alice\" \"plain pass\"\n"
                               "  \"bob\"\t\"") +
                           std::string(kMd5) + "\"   ; trailing comment\n" + "\"carol\" \"" +
                           std::string(kScram) + "\" \"ignored third field\"\r\n" +
                           "\"o\"\"brien\" \"say \"\"hi\"\"\"\n" + "\"dave\" \"x\"";  // no final \n
  auto file = parse_auth_file(text, "userlist.txt");
  REQUIRE_MESSAGE(file.ok(), file.error().message);
  CHECK(file->size() == 5);
  CHECK(file->source() == "userlist.txt");

  const Credential* alice = file->lookup("alice");
  REQUIRE(alice != nullptr);
  CHECK(*alice == Credential{PlainCredential{"plain pass"}});
  const Credential* bob = file->lookup("bob");
  REQUIRE(bob != nullptr);
  CHECK(*bob == Credential{Md5Credential{std::string(kMd5)}});
  const Credential* carol = file->lookup("carol");
  REQUIRE(carol != nullptr);
  REQUIRE(std::holds_alternative<ScramCredential>(*carol));
  const Credential* obrien = file->lookup("o\"brien");
  REQUIRE(obrien != nullptr);
  CHECK(*obrien == Credential{PlainCredential{"say \"hi\""}});
  CHECK(file->lookup("dave") != nullptr);

  CHECK(file->lookup("Alice") == nullptr);  // case-sensitive
  CHECK(file->lookup("") == nullptr);
  CHECK(file->lookup("nobody") == nullptr);
}

TEST_CASE("auth file errors say file:line: what is wrong, and never show the secret") {
  struct Bad {
    std::string text;
    std::string message;
  };
  const std::vector<Bad> bad = {
      {"alice \"pw\"\n", "users.txt:1: expected a quoted user name"},
      {"\"alice\"\n", "users.txt:1: expected a quoted password"},
      {"\"alice\" pw\n", "users.txt:1: expected a quoted password"},
      {"\n\n\"alice\" \"pw\n\"bob\" \"x\"\n", "users.txt:3: unterminated quoted password"},
      {"\"alice \"pw\"\n", "users.txt:1: expected a quoted password"},
      {"\"alice\" \"pw\" junk\n",
       "users.txt:1: unexpected text after the password (quote it or start a comment)"},
      {"\"\" \"pw\"\n", "users.txt:1: empty user name"},
      {"\"alice\" \"\"\n", "users.txt:1: user \"alice\": empty password"},
      {"\"a\" \"x\"\n; c\n\"a\" \"y\"\n", "users.txt:3: duplicate user \"a\""},
      {"\"alice\" \"SCRAM-SHA-256$4096:c2FsdA==$topsecret:topsecret\"\n",
       "users.txt:1: user \"alice\": invalid SCRAM-SHA-256 secret: StoredKey is not 32 bytes of "
       "base64"},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.text);
    auto f = parse_auth_file(b.text, "users.txt");
    REQUIRE_FALSE(f.ok());
    CHECK(f.error().code == EINVAL);
    CHECK(f.error().message == b.message);
    CHECK(f.error().message.find("topsecret") == std::string::npos);
  }
  auto empty = parse_auth_file("", "empty.txt");
  REQUIRE(empty.ok());
  CHECK(empty->size() == 0);
}

TEST_CASE("load_auth_file reads a file and reports a missing one with errno") {
  char path[] = "/tmp/helios_userlist_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  const std::string text = "\"app\" \"" + md5_password_hash("pw", "app") + "\"\n";
  REQUIRE(write(fd, text.data(), text.size()) == ssize_t(text.size()));
  close(fd);
  auto f = load_auth_file(path);
  unlink(path);
  REQUIRE_MESSAGE(f.ok(), f.error().message);
  REQUIRE(f->lookup("app") != nullptr);
  CHECK(std::holds_alternative<Md5Credential>(*f->lookup("app")));
  CHECK(f->source() == path);

  auto missing = load_auth_file("/nonexistent/helios/userlist.txt");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ENOENT);
  CHECK(missing.error().message.find("/nonexistent/helios/userlist.txt") != std::string::npos);
}
