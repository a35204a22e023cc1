#include <doctest/doctest.h>

#include "session/sql_statement_names.h"

using namespace helios::session;
using K = StatementNameUse::Kind;

namespace {
std::vector<StatementNameUse> uses(std::string_view sql, bool complete = true) {
  return statement_name_uses(sql, complete);
}
std::string_view spelled(std::string_view sql, const StatementNameUse& u) {
  return sql.substr(u.name_pos, u.name_len);
}
}  // namespace

TEST_CASE("DEALLOCATE name, DEALLOCATE PREPARE name and DEALLOCATE ALL") {
  auto u = uses("DEALLOCATE pdo_stmt_00000001");
  REQUIRE(u.size() == 1);
  CHECK(u[0].kind == K::kDeallocate);
  CHECK(u[0].name == "pdo_stmt_00000001");
  u = uses("deallocate prepare S_1 ");
  REQUIRE(u.size() == 1);
  CHECK(u[0].kind == K::kDeallocate);
  CHECK(u[0].name == "s_1");  // unquoted names fold to lower case, as the server does
  CHECK(spelled("deallocate prepare S_1 ", u[0]) == "S_1");
  u = uses("DEALLOCATE \"S_1\"");
  REQUIRE(u.size() == 1);
  CHECK(u[0].name == "S_1");
  CHECK(spelled("DEALLOCATE \"S_1\"", u[0]) == "\"S_1\"");
  u = uses("DEALLOCATE \"a\"\"b\"");
  CHECK(u[0].name == "a\"b");
  CHECK(uses("DEALLOCATE ALL")[0].kind == K::kDeallocateAll);
  CHECK(uses("DEALLOCATE PREPARE ALL")[0].kind == K::kDeallocateAll);
  CHECK(uses("DEALLOCATE \"all\"")[0].kind == K::kDeallocate);
  // PREPARE is not reserved: alone it is the statement's name.
  u = uses("DEALLOCATE prepare");
  CHECK(u[0].kind == K::kDeallocate);
  CHECK(u[0].name == "prepare");
  // Not a statement this module reads: left to the server.
  CHECK(uses("DEALLOCATE")[0].kind == K::kOther);
  CHECK(uses("DEALLOCATE a b")[0].kind == K::kOther);
  CHECK(uses("DEALLOCATE 'a'")[0].kind == K::kOther);
}

TEST_CASE("EXECUTE name with or without arguments, also behind EXPLAIN") {
  std::string_view sql = "EXECUTE s1 (1, 'a;b')";
  auto u = uses(sql);
  REQUIRE(u.size() == 1);
  CHECK(u[0].kind == K::kExecute);
  CHECK(spelled(sql, u[0]) == "s1");
  CHECK(uses("execute s1")[0].kind == K::kExecute);
  CHECK(uses("EXPLAIN EXECUTE s1(2)")[0].kind == K::kExecute);
  CHECK(uses("EXPLAIN ANALYZE VERBOSE EXECUTE s1")[0].name == "s1");
  CHECK(uses("EXPLAIN (ANALYZE, COSTS off) EXECUTE s1")[0].name == "s1");
  CHECK(uses("EXECUTE")[0].kind == K::kOther);
  CHECK(uses("EXECUTE s1 s2")[0].kind == K::kOther);
  CHECK(uses("SELECT 'EXECUTE s1'")[0].kind == K::kOther);
}

TEST_CASE("statements are split at ';' outside literals, quoted names and comments") {
  std::string_view sql =
      "SELECT ';', E'\\';', $$;$$, $f$ ; $f$, \"x;\" /* ; /* ; */ ; */ -- ;\n; "
      "DEALLOCATE a;;EXECUTE b(1);  SELECT $1";
  auto u = uses(sql);
  REQUIRE(u.size() == 4);
  CHECK(u[0].kind == K::kOther);
  CHECK(u[1].kind == K::kDeallocate);
  CHECK(spelled(sql, u[1]) == "a");
  CHECK(u[2].kind == K::kExecute);
  CHECK(spelled(sql, u[2]) == "b");
  CHECK(u[3].kind == K::kOther);
  CHECK(uses("").empty());
  CHECK(uses(" ; -- nothing").empty());
}

TEST_CASE("text cut short: only an EXECUTE whose name is whole counts in the last statement") {
  auto u = uses("DEALLOCATE a; DEALLOCATE bc", /*complete=*/false);
  REQUIRE(u.size() == 2);
  CHECK(u[0].kind == K::kDeallocate);
  CHECK(u[1].kind == K::kOther);
  CHECK(uses("EXECUTE abc", false)[0].kind == K::kOther);
  CHECK(uses("EXECUTE abc (1, 2, 'lo", false)[0].kind == K::kExecute);
  CHECK(uses("EXECUTE \"ab", false)[0].kind == K::kOther);
}

TEST_CASE("replace_spans puts the server's names in place of the client's") {
  std::string_view sql = "DEALLOCATE \"S 1\"; EXECUTE s2 (1)";
  auto u = uses(sql);
  REQUIRE(u.size() == 2);
  std::vector<TextReplacement> r{{u[0].name_pos, u[0].name_len, "hp_7"},
                                 {u[1].name_pos, u[1].name_len, "hp_12"}};
  CHECK(replace_spans(sql, r) == "DEALLOCATE hp_7; EXECUTE hp_12 (1)");
  CHECK(replace_spans("abc", {}) == "abc");
}
