#include <doctest/doctest.h>

#include "server/sql_inspect.h"

using namespace helios::server;
using K = SessionEffect::Kind;

namespace {
std::vector<SessionEffect> fx(std::string_view sql, bool complete = true) {
  return inspect_sql(sql, complete);
}
}  // namespace

TEST_CASE("SET of a parameter is recorded with its value as written; SET LOCAL is not") {
  auto e = fx("SET search_path TO \"$user\", public");
  REQUIRE(e.size() == 1);
  CHECK(e[0].kind == K::kSet);
  CHECK(e[0].name == "search_path");
  CHECK(e[0].value == "\"$user\", public");
  e = fx("set Statement_Timeout = '5s'");
  REQUIRE(e.size() == 1);
  CHECK(e[0].name == "statement_timeout");
  CHECK(e[0].value == "'5s'");
  CHECK(fx("SET LOCAL search_path TO x").empty());
  CHECK(fx("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").empty());
  e = fx("SET TIME ZONE 'UTC'");
  REQUIRE(e.size() == 1);
  CHECK(e[0].name == "timezone");
  e = fx("SET SESSION myapp.tenant = 'acme'");
  REQUIRE(e.size() == 1);
  CHECK(e[0].name == "myapp.tenant");
  e = fx("SET work_mem TO DEFAULT");
  REQUIRE(e.size() == 1);
  CHECK(e[0].kind == K::kReset);
}

TEST_CASE("a SET cut short is pinned, not replayed with half a value") {
  auto e = fx("SET search_path TO a, b, c, d, ver", /*complete=*/false);
  REQUIRE(e.size() == 1);
  CHECK(e[0].kind == K::kPin);
  CHECK(e[0].reason == PinReason::kUntrackedSet);
}

TEST_CASE("session state that cannot move between backends pins") {
  auto one = [](std::string_view sql) {
    auto e = fx(sql);
    REQUIRE(e.size() == 1);
    return e[0];
  };
  auto t = one("CREATE TEMP TABLE scratch (id int)");
  CHECK(t.kind == K::kPin);
  CHECK(t.reason == PinReason::kTempTable);
  CHECK(t.name == "scratch");
  CHECK(one("create global temporary table if not exists pg_temp.\"Mixed\" (x int)").name ==
        "Mixed");
  CHECK(fx("CREATE TEMP TABLE t (x int) ON COMMIT DROP").empty());
  CHECK(one("SELECT * INTO TEMP t2 FROM x").reason == PinReason::kTempTable);
  CHECK(one("select pg_advisory_lock(42)").reason == PinReason::kAdvisoryLock);
  CHECK(fx("select pg_advisory_xact_lock(42)").empty());
  CHECK(one("DECLARE c CURSOR WITH HOLD FOR SELECT 1").reason == PinReason::kHoldCursor);
  CHECK(fx("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1").empty());
  CHECK(one("LISTEN jobs").reason == PinReason::kListen);
  CHECK(one("PREPARE q AS SELECT 1").reason == PinReason::kSqlPrepare);
  CHECK(one("SET ROLE admin").reason == PinReason::kUntrackedSet);
}

TEST_CASE("undoing state unpins") {
  auto e = fx("DROP TABLE IF EXISTS a, public.b CASCADE");
  REQUIRE(e.size() == 2);
  CHECK(e[0].kind == K::kUnpin);
  CHECK(e[0].name == "a");
  CHECK(e[1].name == "b");
  CHECK(fx("UNLISTEN *")[0].name == "");
  CHECK(fx("CLOSE ALL")[0].reason == PinReason::kHoldCursor);
  CHECK(fx("select pg_advisory_unlock_all()")[0].kind == K::kUnpin);
  CHECK(fx("DISCARD ALL")[0].kind == K::kDiscardAll);
  CHECK(fx("DEALLOCATE ALL")[0].kind == K::kDeallocateAll);
  CHECK(fx("RESET ALL")[0].kind == K::kResetAll);
}

TEST_CASE("several statements, quotes and comments") {
  auto e = fx("SELECT ';--'; /* ; */ SET search_path = 'a;b'; -- LISTEN x\n LISTEN y");
  REQUIRE(e.size() == 2);
  CHECK(e[0].kind == K::kSet);
  CHECK(e[0].value == "'a;b'");
  CHECK(e[1].name == "y");
  CHECK(fx("SELECT $$ LISTEN z; $$").empty());
  CHECK(fx("BEGIN; SELECT 1")[0].kind == K::kBegin);
  CHECK(fx("select 1").empty());
  CHECK(fx("").empty());
}

TEST_CASE("carried parameters") {
  CHECK(is_carried_parameter("search_path", {}));
  CHECK(is_carried_parameter("timezone", {}));
  CHECK_FALSE(is_carried_parameter("myapp.tenant", {}));
  CHECK(is_carried_parameter("myapp.tenant", {"myapp.tenant"}));
}

TEST_CASE("set_config() with literal arguments is a SET in configuration syntax") {
  auto e = fx("SELECT set_config('Search_Path', 'a, b', false), 1");
  REQUIRE(e.size() == 1);
  CHECK(e[0].kind == K::kSet);
  CHECK(e[0].name == "search_path");
  CHECK(e[0].value == std::string("\x02") + "a, b");
  e = fx("select pg_catalog.set_config ( 'app.tenant' , 'it''s' , FALSE )");
  REQUIRE(e.size() == 1);
  CHECK(e[0].name == "app.tenant");
  CHECK(e[0].value == std::string("\x02") + "it's");
  // Transaction-local: nothing outlives the transaction.
  CHECK(fx("SELECT set_config('app.tenant', 'x', true)").empty());
  // Not literal: cannot be replayed, so the session is pinned.
  e = fx("SELECT set_config('app.tenant', $1, false)");
  REQUIRE(e.size() == 1);
  CHECK(e[0].kind == K::kPin);
  CHECK(e[0].reason == PinReason::kUntrackedSet);
  CHECK(e[0].name == "app.tenant");
  e = fx("SELECT set_config(name, 'v', false) FROM t");
  REQUIRE(e.size() == 1);
  CHECK(e[0].kind == K::kPin);
  // A longer name that merely ends in set_config is something else.
  CHECK(fx("SELECT my_set_config_x(1)").empty());
}

TEST_CASE("plain queries and DML are stateless unless they lock, set_config or SELECT INTO") {
  CHECK(fx("SELECT abalance FROM pgbench_accounts WHERE aid = 42").empty());
  CHECK(fx("  (select 1) union (select 2)").empty());
  CHECK(fx("/* c */ INSERT INTO t VALUES (1); UPDATE t SET v = 2; DELETE FROM t").empty());
  CHECK(fx("with x as (select 1) select * from x").empty());
  CHECK(fx("SELECT * INTO TEMP t2 FROM t").size() == 1);
  CHECK(fx("-- note\nSELECT pg_advisory_lock(1)").size() == 1);
  CHECK(fx("UPDATE t SET v = set_config('a.b', 'c', false)").size() == 1);
  CHECK(fx("SELECT 1;").empty());
}
