// The relay's client-message decisions, driven with byte sequences and a recording sink: no
// sockets, no worker. Every scenario is also fed one byte at a time, which must give the same
// actions and the same bytes for the backend.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "../pg/pg_test_util.h"
#include "pg/writer.h"
#include "pool/statement_cache.h"
#include "proxy/client_decoder.h"

using namespace helios;
using namespace helios::proxy;
using session::Expect;
using session::Reply;

namespace {

const char* expect_name(Expect e) {
  switch (e) {
    case Expect::kParse:
      return "Parse";
    case Expect::kBind:
      return "Bind";
    case Expect::kClose:
      return "Close";
    case Expect::kDescribeStmt:
      return "DescribeStmt";
    case Expect::kDescribePortal:
      return "DescribePortal";
    case Expect::kExecute:
      return "Execute";
    case Expect::kSync:
      return "Sync";
    case Expect::kQuery:
      return "Query";
  }
  return "?";
}
const char* reply_name(Reply r) {
  switch (r) {
    case Reply::kForward:
      return "forward";
    case Reply::kSwallow:
      return "swallow";
    case Reply::kSynthParse:
      return "synth-parse";
    case Reply::kSynthClose:
      return "synth-close";
    case Reply::kSynthReady:
      return "synth-ready";
    case Reply::kProbe:
      return "probe";
  }
  return "?";
}

// Records what the decoder asks for. `to_backend` is the byte stream the backend would get;
// `to_client` what the proxy answered itself; `events` the replies expected, in order.
class RecordingSink final : public DecoderSink {
 public:
  session::PreparedRegistry* registry = nullptr;
  std::optional<pool::StatementCache> backend;  // set: a backend is held
  bool refuse_pins = false;                     // as pin_policy = "error" does
  uint64_t memory_limit = 0;

  std::string to_backend, to_client;
  std::vector<std::string> events;
  std::vector<session::SessionEffect> applied;
  int ready_owed = 0;
  std::unique_ptr<session::ClientSession> sess;
  std::vector<session::PreparedPtr> interned;  // released at the end of the test

  bool leased() const override { return backend.has_value(); }
  bool nothing_in_flight() const override { return !leased() && to_backend.empty() && owed() == 0; }
  bool only_synthetic_owed() const override {
    return !leased() && to_backend.empty() && owed() > 0 && owed() == synthetic;
  }
  pool::StatementCache* backend_statements() override { return backend ? &*backend : nullptr; }
  void forward(const uint8_t* p, uint32_t n, bool) override {
    to_backend.append(reinterpret_cast<const char*>(p), n);
  }
  void send(std::string_view bytes) override { to_backend += bytes; }
  void expect(Expect e, Reply r, uint32_t stmt) override {
    events.push_back(std::string(expect_name(e)) + "/" + reply_name(r) +
                     (stmt ? "/s" + std::to_string(stmt) : ""));
    ++expected;
    if (session::ResponseTracker::is_synthetic(r)) ++synthetic;
  }
  void awaits_ready() override { ++ready_owed; }
  void answer(std::string_view bytes) override { to_client += bytes; }
  session::ClientSession& session() override {
    if (!sess) sess = std::make_unique<session::ClientSession>();
    return *sess;
  }
  session::ClientSession* session_if() override { return sess.get(); }
  bool apply_effects(const std::vector<session::SessionEffect>& effects,
                     std::string* refusal) override {
    for (const auto& e : effects) {
      if (refuse_pins && e.kind == session::SessionEffect::Kind::kPin) {
        *refusal = std::string("refused: ") + session::pin_reason_name(e.reason);
        return false;
      }
    }
    applied.insert(applied.end(), effects.begin(), effects.end());
    return true;
  }
  StatementSql map_statement_sql(std::string_view, bool, bool, bool, std::string*,
                                 std::string*) override {
    return StatementSql::kNone;
  }
  session::PreparedPtr intern(std::string_view tail) override {
    auto p = registry->intern(tail, memory_limit);
    if (p) interned.push_back(p);
    return p;
  }
  std::string prepare_on_backend(const session::PreparedPtr& stmt) override {
    if (backend->contains(stmt->id)) return {};
    backend->insert(stmt->id, 0);
    std::string out;
    pg::write_parse_raw(out, stmt->server_name, stmt->tail);
    events.push_back("prepare/s" + std::to_string(stmt->id));
    return out;
  }

  int owed() const { return expected; }
  int expected = 0;
  int synthetic = 0;

  ~RecordingSink() override {
    if (sess) sess->statements.clear();
    sess.reset();
    interned.clear();
  }
};

struct Run {
  RecordingSink sink;
  ClientWire wire;
  pg::StreamFramer framer;
  config::ConnectionPoolConfig cfg;
  config::PoolMode mode = config::PoolMode::kTransaction;
  bool track = true;
  DecodeResult last;
  uint16_t statements = 0;
  bool terminate = false;

  // Feeds `bytes` whole, or one byte at a time.
  void feed(std::string_view bytes, bool bytewise) {
    ClientDecoder d(cfg, mode, track, wire, sink);
    auto one = [&](const uint8_t* p, uint32_t n) {
      last = d.feed(framer, p, n);
      statements = uint16_t(statements + last.statements);
      terminate = terminate || last.terminate;
    };
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    if (!bytewise) {
      one(p, uint32_t(bytes.size()));
      return;
    }
    for (size_t i = 0; i < bytes.size(); ++i) one(p + i, 1);
  }
};

std::vector<pg::test::Framed> messages(std::string_view s) {
  std::vector<pg::test::Framed> v;
  pg::test::take_messages(s, v);
  return v;
}

std::string query(std::string_view sql) {
  std::string out;
  pg::write_query(out, sql);
  return out;
}

std::string parse(std::string_view name, std::string_view sql) {
  std::string out;
  pg::write_parse(out, name, sql);
  return out;
}

std::string bind_execute_sync(std::string_view stmt) {
  std::string out;
  pg::write_bind(out, "", stmt);
  pg::write_execute(out, "");
  pg::write_sync(out);
  return out;
}

}  // namespace

TEST_CASE("decoder: a simple Query is forwarded as it came and owes one ReadyForQuery") {
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    session::PreparedRegistry reg;
    Run r;
    r.sink.registry = &reg;
    std::string q = query("SELECT 1");
    r.feed(q, bytewise);
    CHECK(r.sink.to_backend == q);
    CHECK(r.sink.events == std::vector<std::string>{"Query/forward"});
    CHECK(r.sink.ready_owed == 1);
    CHECK(r.statements == 1);
    CHECK(r.sink.to_client.empty());
    CHECK(r.framer.at_boundary());
  }
}

TEST_CASE(
    "decoder: statement mode answers BEGIN itself, or refuses the client if replies are owed") {
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    session::PreparedRegistry reg;
    Run r;
    r.sink.registry = &reg;
    r.mode = config::PoolMode::kStatement;
    r.feed(query("  /* c */ begin isolation level serializable"), bytewise);
    CHECK(r.sink.to_backend.empty());
    auto replies = messages(r.sink.to_client);
    REQUIRE(replies.size() == 2);
    CHECK(replies[0].type == 'E');
    CHECK(replies[0].body.find("0A000") != std::string::npos);
    CHECK(replies[1].type == 'Z');
    CHECK(r.last.refusal.empty());

    Run busy;
    busy.sink.registry = &reg;
    busy.mode = config::PoolMode::kStatement;
    busy.feed(query("SELECT pg_sleep(1)") + query("START TRANSACTION"), bytewise);
    CHECK(busy.sink.to_client.empty());
    CHECK(busy.last.refusal.find("statement pooling") != std::string::npos);
  }
  // BEGIN is a word, not a prefix.
  session::PreparedRegistry reg;
  Run r;
  r.sink.registry = &reg;
  r.mode = config::PoolMode::kStatement;
  r.feed(query("beginning_of_time()"), false);
  CHECK(r.sink.to_client.empty());
  CHECK(r.sink.events == std::vector<std::string>{"Query/forward"});
  // Words inside literals, identifiers and comments are not statements; a BEGIN after another
  // statement of the same Query is one (PostgreSQL opens the block there).
  for (const char* sql : {"SELECT 'begin; BEGIN'", "SELECT 1 AS \"begin\" -- ; begin",
                          "SELECT $$; begin$$", "/* ; begin */ SELECT 1"}) {
    CAPTURE(sql);
    Run plain;
    plain.sink.registry = &reg;
    plain.mode = config::PoolMode::kStatement;
    plain.feed(query(sql), false);
    CHECK(plain.sink.to_client.empty());
  }
  for (const char* sql : {"SELECT 1; BEGIN", "select 1;\n start transaction read only"}) {
    CAPTURE(sql);
    Run multi;
    multi.sink.registry = &reg;
    multi.mode = config::PoolMode::kStatement;
    multi.feed(query(sql), false);
    CHECK(multi.sink.to_backend.empty());
    auto replies = messages(multi.sink.to_client);
    REQUIRE(replies.size() == 2);
    CHECK(replies[0].body.find("0A000") != std::string::npos);
  }
}

TEST_CASE(
    "decoder: a named Parse with no backend is answered by the proxy, Bind uses the server name") {
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    session::PreparedRegistry reg;
    Run r;
    r.sink.registry = &reg;
    r.feed(parse("s1", "SELECT $1::int"), bytewise);
    CHECK(r.sink.to_backend.empty());
    REQUIRE(r.sink.interned.size() == 1);
    uint32_t id = r.sink.interned[0]->id;
    std::string sid = "/s" + std::to_string(id);
    CHECK(r.sink.events == std::vector<std::string>{"Parse/synth-parse" + sid});

    // The Sync of a batch the proxy answered in full needs no server.
    std::string sync;
    pg::write_sync(sync);
    r.feed(sync, bytewise);
    CHECK(r.sink.events.back() == "Sync/synth-ready");
    CHECK(r.sink.to_backend.empty());
    CHECK(r.sink.ready_owed == 0);

    r.feed(bind_execute_sync("s1"), bytewise);
    auto sent = messages(r.sink.to_backend);
    REQUIRE(sent.size() == 3);
    CHECK(sent[0].type == 'B');
    CHECK(sent[0].body.find(r.sink.interned[0]->server_name) != std::string::npos);
    CHECK(sent[0].body.find("s1") == std::string::npos);
    CHECK(sent[1].type == 'E');
    CHECK(sent[2].type == 'S');
    // No backend yet: the statement is recorded to be prepared on the one the lease gets.
    REQUIRE(r.sink.sess);
    REQUIRE(r.sink.sess->pending.size() == 1);
    CHECK(r.sink.sess->pending[0].stmt->id == id);
    CHECK(r.statements == 1);
    CHECK(r.sink.ready_owed == 1);
  }
}

TEST_CASE("decoder: a named Parse on a held backend that lacks it is sent under the server name") {
  session::PreparedRegistry reg;
  Run r;
  r.sink.registry = &reg;
  r.sink.backend.emplace();
  r.cfg.prepared_statement_cache_size = 1;
  r.sink.backend->insert(999, 1);  // the cache is full: the old statement is evicted
  r.feed(parse("s1", "SELECT 1"), false);
  REQUIRE(r.sink.interned.size() == 1);
  const auto& stmt = r.sink.interned[0];
  std::string sid = "/s" + std::to_string(stmt->id);
  CHECK(r.sink.events ==
        std::vector<std::string>{"Close/swallow" + sid, "Parse/forward" + sid, "Close/swallow"});
  auto sent = messages(r.sink.to_backend);
  REQUIRE(sent.size() == 3);
  CHECK(sent[0].type == 'C');
  CHECK(sent[1].type == 'P');
  CHECK(sent[1].body.starts_with(stmt->server_name + '\0'));
  CHECK(sent[2].type == 'C');
  CHECK(sent[2].body == "Shp_999" + std::string(1, '\0'));
  CHECK(r.sink.backend->contains(stmt->id));
  CHECK(!r.sink.backend->contains(999));

  // Prepared again by the client after a Close: the backend has it, the proxy answers.
  std::string close;
  pg::write_close(close, 'S', "s1");
  r.feed(close, false);
  CHECK(r.sink.events.back() == "Close/synth-close");
  r.sink.to_backend.clear();
  r.feed(parse("s1", "SELECT 1"), false);
  CHECK(r.sink.to_backend.empty());
  CHECK(r.sink.events.back() == "Parse/synth-parse" + sid);
}

TEST_CASE("decoder: a duplicate Parse is answered 42P05 and the batch is skipped to its Sync") {
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    session::PreparedRegistry reg;
    Run r;
    r.sink.registry = &reg;
    std::string sync;
    pg::write_sync(sync);
    r.feed(parse("s1", "SELECT 1") + sync, bytewise);
    r.sink.events.clear();
    r.sink.expected = r.sink.synthetic = 0;  // the synthetic replies were sent
    r.feed(parse("s1", "SELECT 2") + bind_execute_sync("s1"), bytewise);
    auto replies = messages(r.sink.to_client);
    REQUIRE(replies.size() == 2);
    CHECK(replies[0].type == 'E');
    CHECK(replies[0].body.find("42P05") != std::string::npos);
    CHECK(replies[0].body.find("\"s1\"") != std::string::npos);
    CHECK(replies[1].type == 'Z');
    CHECK(r.sink.to_backend.empty());
    CHECK(r.sink.events.empty());
    CHECK(!r.wire.skip_to_sync);
  }
}

TEST_CASE("decoder: prepared_statement_mode = disable refuses a named Parse in order") {
  session::PreparedRegistry reg;
  Run r;
  r.sink.registry = &reg;
  r.cfg.prepared_statement_mode = config::PreparedStatementMode::kDisable;
  r.feed(parse("s1", "SELECT 1"), false);
  auto replies = messages(r.sink.to_client);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].body.find("0A000") != std::string::npos);
  CHECK(r.wire.skip_to_sync);
  // The unnamed statement still works.
  std::string sync;
  pg::write_sync(sync);
  r.feed(sync + parse("", "SELECT 1"), false);
  CHECK(messages(r.sink.to_client).size() == 2);
  CHECK(messages(r.sink.to_backend).size() == 1);
}

TEST_CASE("decoder: a statement that would pin is answered 0A000 under pin_policy = error") {
  session::PreparedRegistry reg;
  Run r;
  r.sink.registry = &reg;
  r.sink.refuse_pins = true;
  r.feed(query("CREATE TEMP TABLE t(x int)"), false);
  CHECK(r.sink.to_backend.empty());
  auto replies = messages(r.sink.to_client);
  REQUIRE(replies.size() == 2);
  CHECK(replies[0].body.find("0A000") != std::string::npos);
  CHECK(replies[0].body.find("temp_table") != std::string::npos);
  CHECK(replies[1].type == 'Z');
  CHECK(r.sink.ready_owed == 0);

  // With a reply owed, answering would reorder replies: the client is refused instead.
  r.sink.backend.emplace();
  r.feed(query("LISTEN x"), false);
  CHECK(r.last.refusal == "refused: listen");
}

TEST_CASE("decoder: session effects reach the sink; session mode reads no SQL") {
  session::PreparedRegistry reg;
  Run r;
  r.sink.registry = &reg;
  r.feed(query("SET search_path TO a; SELECT pg_advisory_lock(1)"), false);
  bool set = false, lock = false;
  for (const auto& e : r.sink.applied) {
    set = set || (e.kind == session::SessionEffect::Kind::kSet && e.name == "search_path");
    lock = lock || (e.kind == session::SessionEffect::Kind::kPin &&
                    e.reason == session::PinReason::kAdvisoryLock);
  }
  CHECK(set);
  CHECK(lock);

  Run s;
  s.sink.registry = &reg;
  s.mode = config::PoolMode::kSession;
  s.track = false;
  s.feed(query("CREATE TEMP TABLE t(x int)"), false);
  CHECK(s.sink.applied.empty());
  CHECK(s.sink.to_backend == query("CREATE TEMP TABLE t(x int)"));
}

TEST_CASE("decoder: Terminate and unframeable input") {
  session::PreparedRegistry reg;
  Run r;
  r.sink.registry = &reg;
  std::string t;
  pg::write_terminate(t);
  r.feed(t, false);
  CHECK(r.terminate);
  CHECK(r.sink.to_backend.empty());

  Run bad;
  bad.sink.registry = &reg;
  std::string garbage = {'Q', 0, 0, 0, 2};  // a length below 4
  bad.feed(garbage, false);
  CHECK(bad.last.violation != nullptr);
}

TEST_CASE("decoder: a long Query body streams through in pieces") {
  session::PreparedRegistry reg;
  Run r;
  r.sink.registry = &reg;
  std::string sql = "SELECT '" + std::string(300000, 'x') + "'";
  std::string q = query(sql);
  // Fed in 4 KiB inputs, as receive buffers would deliver it.
  ClientDecoder d(r.cfg, r.mode, r.track, r.wire, r.sink);
  for (size_t i = 0; i < q.size(); i += 4096) {
    size_t n = std::min<size_t>(4096, q.size() - i);
    d.feed(r.framer, reinterpret_cast<const uint8_t*>(q.data() + i), uint32_t(n));
  }
  CHECK(r.sink.to_backend == q);
  CHECK(r.sink.events == std::vector<std::string>{"Query/forward"});
}
