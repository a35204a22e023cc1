#include "session/prepared_registry.h"

#include <doctest/doctest.h>

#include <string>

using helios::session::PreparedPtr;
using helios::session::PreparedRegistry;

namespace {

std::string tail(const std::string& sql) {
  return sql + std::string("\0\0\0", 3);
}

}  // namespace

TEST_CASE("PreparedRegistry: one statement per text, freed with its last holder") {
  PreparedRegistry reg;
  std::string t = tail("SELECT 1");
  PreparedPtr a = reg.intern(t);
  PreparedPtr b = reg.intern(t);
  REQUIRE(a);
  CHECK(a == b);
  CHECK(reg.size() == 1);
  CHECK(reg.bytes() == t.size());
  a.reset();
  CHECK(reg.size() == 1);  // b still holds it
  b.reset();
  CHECK(reg.size() == 0);
  CHECK(reg.bytes() == 0);
  // The same text again is a new statement with a new server name.
  PreparedPtr c = reg.intern(t);
  CHECK(c->server_name != "hp_1");
}

TEST_CASE("PreparedRegistry: a limit on the bytes held refuses new texts, not known ones") {
  PreparedRegistry reg;
  std::string big1 = tail("SELECT '" + std::string(600, 'x') + "'");
  std::string big2 = tail("SELECT '" + std::string(600, 'y') + "'");
  PreparedPtr a = reg.intern(big1, 1000);
  REQUIRE(a);
  CHECK_FALSE(reg.intern(big2, 1000));  // would hold 1200 bytes
  CHECK(reg.intern(big1, 1000) == a);   // already held: no new bytes
  a.reset();
  CHECK(reg.intern(big2, 1000) != nullptr);  // room again (the result is dropped at once)
  CHECK(reg.bytes() == 0);
}
