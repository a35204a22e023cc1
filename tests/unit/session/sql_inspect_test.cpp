#include <doctest/doctest.h>

#include "session/sql_inspect.h"

using namespace helios::session;
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

TEST_CASE("RESET TIME ZONE resets timezone") {
  auto e = fx("RESET TIME ZONE");
  REQUIRE(e.size() == 1);
  CHECK(e[0].kind == K::kReset);
  CHECK(e[0].name == "timezone");
  e = fx("SET TIME ZONE LOCAL");
  REQUIRE(e.size() == 1);
  CHECK(e[0].kind == K::kReset);
  CHECK(e[0].name == "timezone");
  e = fx("reset timezone");
  REQUIRE(e.size() == 1);
  CHECK(e[0].name == "timezone");
}

TEST_CASE("plain queries and DML calling built-ins never want a session probe") {
  CHECK_FALSE(may_change_session("SELECT abalance FROM pgbench_accounts WHERE aid = 42", true));
  CHECK_FALSE(
      may_change_session("UPDATE pgbench_accounts SET abalance = abalance + -5 WHERE "
                         "aid = 1;",
                         true));
  CHECK_FALSE(
      may_change_session("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
                         "VALUES (2, 1, 35236, -2808, CURRENT_TIMESTAMP)",
                         true));
  CHECK_FALSE(may_change_session("INSERT INTO s.t (a, b) VALUES (1, 2)", true));
  CHECK_FALSE(
      may_change_session("SELECT count(*), max(v), now(), pg_catalog.lower('X') FROM "
                         "(VALUES (1), (2)) AS t(v) WHERE v IN (1, 2) AND EXISTS "
                         "(SELECT 1)",
                         true));
  CHECK_FALSE(may_change_session("SELECT CAST(x AS varchar(20)), coalesce(a, b) FROM t", true));
  CHECK_FALSE(may_change_session("SELECT v FROM (VALUES (1), (2)) t(v)", true));
  CHECK_FALSE(may_change_session("BEGIN", true));
  CHECK_FALSE(may_change_session("COMMIT; END; ROLLBACK; START TRANSACTION", true));
  CHECK_FALSE(may_change_session("SET LOCAL search_path TO x", true));
  CHECK_FALSE(may_change_session("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", true));
  CHECK_FALSE(may_change_session("SHOW timezone; LOCK TABLE t; TRUNCATE t", true));
  CHECK_FALSE(may_change_session("", true));
  CHECK_FALSE(may_change_session("SET search_path TO x; RESET statement_timeout", true));
  CHECK_FALSE(effects_need_probe(fx("BEGIN"), {}));
  CHECK_FALSE(effects_need_probe(fx("SET search_path TO x; RESET ALL; RESET work_mem"), {}));
  CHECK_FALSE(effects_need_probe(fx("SET myapp.x = '1'"), {"myapp.x"}));
}

TEST_CASE("what the text cannot show for certain wants a session probe") {
  CHECK(may_change_session("SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE", true));
  CHECK(may_change_session("RESET TIME ZONE", true));
  CHECK(may_change_session("SAVEPOINT sp", true));
  CHECK(may_change_session("ROLLBACK TO SAVEPOINT sp", true));
  CHECK(may_change_session("rollback to sp", true));
  CHECK(may_change_session("COMMIT AND CHAIN", true));
  CHECK(may_change_session("ROLLBACK AND CHAIN", true));
  CHECK(may_change_session("DO $$BEGIN PERFORM set_config('a.b', 'c', false); END$$", true));
  CHECK(may_change_session("CALL p()", true));
  CHECK(may_change_session("CREATE TABLE pg_temp.a_private(secret text)", true));
  CHECK(may_change_session("INSERT INTO pg_temp.a_private VALUES ('x')", true));
  CHECK(may_change_session("SELECT pg_advisory_lock(k) FROM generate_series(100, 101) k", true));
  CHECK(may_change_session("SELECT my_function(1)", true));
  CHECK(may_change_session("SELECT app.f()", true));
  CHECK(may_change_session("SELECT \"MyFn\"()", true));
  CHECK(may_change_session("UPDATE t SET v = f(v)", true));
  CHECK(may_change_session("LISTEN x", true));
  CHECK(may_change_session("PREPARE p AS SELECT 1", true));
  CHECK(may_change_session("SELECT 1; SAVEPOINT a", true));
  CHECK(may_change_session("SELECT * INTO t2 FROM t", true));
  CHECK(may_change_session("FETCH 1 FROM c", true));
  CHECK(may_change_session("VACUUMX", true));                                    // unknown: ask
  CHECK(may_change_session("SELECT 1 FROM t WHERE a = 1", /*complete=*/false));  // cut
  CHECK(effects_need_probe(fx("SET enable_seqscan = off"), {}));
  CHECK(effects_need_probe(fx("SELECT pg_advisory_lock(1)"), {}));
  CHECK(effects_need_probe(fx("DROP TABLE t"), {}));
  CHECK(effects_need_probe(fx("CREATE TEMP TABLE t (v int)"), {}));
}

TEST_CASE("a simple Query's NUL terminator is not part of a SET value") {
  auto e = inspect_sql(std::string_view("SET TIME ZONE LOCAL\0", 20), true);
  REQUIRE(e.size() == 1);
  CHECK(e[0].kind == SessionEffect::Kind::kReset);
  e = inspect_sql(std::string_view("SET search_path TO DEFAULT\0", 27), true);
  REQUIRE(e.size() == 1);
  CHECK(e[0].kind == SessionEffect::Kind::kReset);
  e = inspect_sql(std::string_view("SET work_mem = '8MB'\0", 21), true);
  REQUIRE(e.size() == 1);
  CHECK(e[0].value == "'8MB'");
}
