#include "session/read_only.h"

#include <doctest/doctest.h>

#include <string>

using namespace helios::session;

namespace {

std::string msg(char type, const std::string& body) {
  std::string out(1, type);
  uint32_t len = uint32_t(body.size() + 4);
  for (int s = 24; s >= 0; s -= 8) out += char((len >> s) & 0xff);
  return out + body;
}
std::string z(std::string_view s) {
  return std::string(s) + '\0';
}
std::string parse(const std::string& name, const std::string& sql) {
  return msg('P', z(name) + z(sql) + std::string(2, '\0'));
}
std::string bind(const std::string& name) {
  return msg('B', z("") + z(name) + std::string(6, '\0'));
}
std::string execute() {
  return msg('E', z("") + std::string(4, '\0'));
}
std::string sync() {
  return msg('S', "");
}

}  // namespace

TEST_CASE("classify_sql: plain reads are read-only") {
  CHECK(classify_sql("SELECT 1") == ReadClass::kReadOnly);
  CHECK(classify_sql("select abalance from pgbench_accounts where aid = $1") ==
        ReadClass::kReadOnly);
  CHECK(classify_sql("SELECT count(*), max(x) FROM t WHERE y IN (1,2) AND z = lower('A')") ==
        ReadClass::kReadOnly);
  CHECK(classify_sql("VALUES (1), (2)") == ReadClass::kReadOnly);
  CHECK(classify_sql("TABLE t") == ReadClass::kReadOnly);
  CHECK(classify_sql("WITH a AS (SELECT 1) SELECT * FROM a") == ReadClass::kReadOnly);
  CHECK(classify_sql("SELECT 1; SELECT 2;") == ReadClass::kReadOnly);
  CHECK(classify_sql("SELECT 'nextval(' || \"x\" FROM t") == ReadClass::kReadOnly);
  CHECK(classify_sql("SELECT inet_server_port()") == ReadClass::kReadOnly);
}

TEST_CASE("classify_sql: writes, locks and unknown functions go to the primary") {
  CHECK(classify_sql("INSERT INTO t VALUES (1)") == ReadClass::kPrimary);
  CHECK(classify_sql("UPDATE t SET x = 1") == ReadClass::kPrimary);
  CHECK(classify_sql("SELECT nextval('s')") == ReadClass::kPrimary);
  CHECK(classify_sql("SELECT pg_catalog.setval('s', 1)") == ReadClass::kPrimary);
  CHECK(classify_sql("SELECT my_function(1)") == ReadClass::kPrimary);
  CHECK(classify_sql("SELECT \"MyFunc\"(1)") == ReadClass::kPrimary);
  CHECK(classify_sql("SELECT pg_advisory_lock(1)") == ReadClass::kPrimary);
  CHECK(classify_sql("SELECT * INTO t2 FROM t") == ReadClass::kPrimary);
  CHECK(classify_sql("SELECT * FROM t FOR UPDATE") == ReadClass::kPrimary);
  CHECK(classify_sql("SELECT * FROM t FOR NO KEY UPDATE") == ReadClass::kPrimary);
  CHECK(classify_sql("SELECT * FROM t FOR SHARE") == ReadClass::kPrimary);
  CHECK(classify_sql("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d") ==
        ReadClass::kPrimary);
  CHECK(classify_sql("SELECT 1; INSERT INTO t VALUES (1)") == ReadClass::kPrimary);
  CHECK(classify_sql("EXECUTE p") == ReadClass::kPrimary);
  CHECK(classify_sql("SHOW work_mem") == ReadClass::kPrimary);
  CHECK(classify_sql("COMMIT") == ReadClass::kPrimary);
  CHECK(classify_sql("") == ReadClass::kReadOnly);  // an empty query runs anywhere
}

TEST_CASE("classify_sql: the hint forces the primary, even in a comment") {
  CHECK(classify_sql("/* helios:primary */ SELECT 1") == ReadClass::kPrimary);
  CHECK(classify_sql("SELECT 1 -- helios:primary") == ReadClass::kPrimary);
}

TEST_CASE("classify_sql: BEGIN READ ONLY opens a replica transaction") {
  CHECK(classify_sql("BEGIN READ ONLY") == ReadClass::kReadOnlyBegin);
  CHECK(classify_sql("START TRANSACTION READ ONLY") == ReadClass::kReadOnlyBegin);
  CHECK(classify_sql("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY") ==
        ReadClass::kReadOnlyBegin);
  CHECK(classify_sql("BEGIN READ ONLY; SELECT 1") == ReadClass::kReadOnlyBegin);
  CHECK(classify_sql("BEGIN") == ReadClass::kPrimary);
  CHECK(classify_sql("BEGIN READ WRITE") == ReadClass::kPrimary);
  CHECK(classify_sql("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY") == ReadClass::kPrimary);
  CHECK(classify_sql("BEGIN READ ONLY; COMMIT; INSERT INTO t VALUES (1)") == ReadClass::kPrimary);
}

TEST_CASE("classify_batch: extended-protocol batches") {
  StatementText none = [](std::string_view) { return std::optional<std::string_view>(); };
  CHECK(classify_batch(parse("", "SELECT 1") + bind("") + execute() + sync(), none) ==
        ReadClass::kReadOnly);
  CHECK(classify_batch(parse("", "UPDATE t SET x = 1") + bind("") + execute() + sync(), none) ==
        ReadClass::kPrimary);
  // Not ended by a Sync: the rest of the batch is unknown.
  CHECK(classify_batch(parse("", "SELECT 1") + bind("") + execute(), none) == ReadClass::kPrimary);
  // A statement prepared earlier: its text decides; unknown text -> primary.
  StatementText known = [](std::string_view name) -> std::optional<std::string_view> {
    if (name == "hp_1") return std::string_view("SELECT abalance FROM a WHERE aid = $1");
    if (name == "hp_2") return std::string_view("SELECT nextval('s')");
    return std::nullopt;
  };
  CHECK(classify_batch(bind("hp_1") + execute() + sync(), known) == ReadClass::kReadOnly);
  CHECK(classify_batch(bind("hp_2") + execute() + sync(), known) == ReadClass::kPrimary);
  CHECK(classify_batch(bind("hp_9") + execute() + sync(), known) == ReadClass::kPrimary);
  CHECK(classify_batch(msg('Q', z("SELECT 1")), none) == ReadClass::kReadOnly);
  CHECK(classify_batch(msg('Q', z("SELECT 1")) + msg('Q', z("DELETE FROM t")), none) ==
        ReadClass::kPrimary);
  CHECK(classify_batch(msg('F', std::string(10, '\0')), none) == ReadClass::kPrimary);
  CHECK(classify_batch(msg('Q', z("SELECT 1")).substr(0, 7), none) == ReadClass::kPrimary);
  CHECK(classify_batch("", none) == ReadClass::kPrimary);
}
