// The relay's decisions on a backend's replies, driven with byte sequences and a recording sink:
// no sockets, no worker. Scenarios are fed whole and one byte at a time; both must give the
// client the same bytes.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "../pg/pg_test_util.h"
#include "pg/writer.h"
#include "proxy/reply_decoder.h"

using namespace helios;
using namespace helios::proxy;
using session::Expect;
using session::Reply;

namespace {

class RecordingReplySink final : public ReplySink {
 public:
  explicit RecordingReplySink(session::TrackBlockPool& pool) : pool_(pool) {}
  ~RecordingReplySink() override { tracker_.clear(pool_); }

  bool attached_ = true;
  bool between = false;
  bool survives = false;
  bool duration_cancelled = false;
  std::string to_client;
  std::vector<char> ready;  // client_ready() calls: the transaction status of each
  std::vector<std::pair<std::string, std::string>> client_params;
  std::unique_ptr<session::ClientSession> sess;

  session::ResponseTracker& tracker() override { return tracker_; }
  bool attached() const override { return attached_; }
  session::ClientSession* session_if() override { return sess.get(); }
  bool between_transactions() const override { return between; }
  bool survives_loss() const override { return survives; }
  void forward(const uint8_t* p, uint32_t n, bool) override {
    to_client.append(reinterpret_cast<const char*>(p), n);
  }
  void send(std::string_view bytes) override { to_client += bytes; }
  void emit_synthetic() override {
    tracker_.drain_synthetic(pool_, [&](Reply r) {
      if (r == Reply::kSynthParse) pg::write_parse_complete(to_client);
      if (r == Reply::kSynthClose) pg::write_close_complete(to_client);
      if (r == Reply::kSynthReady) pg::write_ready_for_query(to_client, 'I');
    });
  }
  void client_parameter(std::string_view name, std::string_view value) override {
    client_params.emplace_back(name, value);
  }
  bool hold_parameter_status(std::string_view) override { return false; }
  void probe_message(char, std::string_view, bool) override {}
  void restore_done() override {}
  bool client_ready(char tx_status) override {
    ready.push_back(tx_status);
    return false;
  }
  std::string duration_cancel_message() override {
    return duration_cancelled ? "canceling statement: too long" : "";
  }

  void expect(Expect e, Reply r = Reply::kForward, uint32_t stmt = 0) {
    tracker_.push(pool_, e, r, stmt);
  }

 private:
  session::TrackBlockPool& pool_;
  session::ResponseTracker tracker_;
};

std::vector<pg::test::Framed> messages(std::string_view s) {
  std::vector<pg::test::Framed> v;
  pg::test::take_messages(s, v);
  return v;
}

std::string types(std::string_view s) {
  std::string t;
  for (const auto& m : messages(s)) t += m.type;
  return t;
}

// A SELECT's answer: RowDescription, one DataRow, CommandComplete, ReadyForQuery.
std::string select_reply(char status = 'I') {
  std::string out;
  std::string_view cols[] = {"x"};
  pg::write_row_description(out, cols);
  std::optional<std::string_view> vals[] = {"1"};
  pg::write_data_row(out, vals);
  pg::write_command_complete(out, "SELECT 1");
  pg::write_ready_for_query(out, status);
  return out;
}

ReplyResult feed(pool::Backend& b, session::TrackBlockPool& pool, RecordingReplySink& sink,
                 std::string_view bytes, bool bytewise) {
  ReplyDecoder d(b, pool, sink);
  ReplyResult r;
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  if (!bytewise) return d.feed(p, uint32_t(bytes.size()));
  for (size_t i = 0; i < bytes.size(); ++i) r = d.feed(p + i, 1);
  return r;
}

}  // namespace

TEST_CASE("reply decoder: a Query's answer reaches the client as it came and may end the lease") {
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    session::TrackBlockPool pool;
    RecordingReplySink sink(pool);
    pool::Backend b;
    sink.expect(Expect::kQuery);
    std::string reply = select_reply('I');
    auto r = feed(b, pool, sink, reply, bytewise);
    CHECK(sink.to_client == reply);
    CHECK(sink.ready == std::vector<char>{'I'});
    CHECK(r.lease_may_end);
    CHECK(!r.desync);
    CHECK(sink.tracker().empty());
    CHECK(b.tx_status == 'I');
  }
}

TEST_CASE("reply decoder: replies to what the proxy injected are dropped, owed ones are made") {
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    session::TrackBlockPool pool;
    RecordingReplySink sink(pool);
    pool::Backend b;
    // The client's named Parse was answered by the proxy (no backend yet); at the lease the
    // proxy prepared it (Close + Parse, swallowed) ahead of the client's Bind/Execute/Sync.
    sink.expect(Expect::kParse, Reply::kSynthParse, 7);
    sink.expect(Expect::kClose, Reply::kSwallow, 7);
    sink.expect(Expect::kParse, Reply::kSwallow, 7);
    sink.expect(Expect::kBind);
    sink.expect(Expect::kExecute);
    sink.expect(Expect::kSync);
    std::string reply;
    pg::write_close_complete(reply);
    pg::write_parse_complete(reply);
    pg::write_bind_complete(reply);
    std::optional<std::string_view> vals[] = {"1"};
    pg::write_data_row(reply, vals);
    pg::write_command_complete(reply, "SELECT 1");
    pg::write_ready_for_query(reply, 'I');
    auto r = feed(b, pool, sink, reply, bytewise);
    CHECK(types(sink.to_client) == "12DCZ");  // ParseComplete made by the proxy, in its place
    CHECK(r.lease_may_end);
    CHECK(sink.tracker().empty());
  }
}

TEST_CASE(
    "reply decoder: a failed Parse the proxy injected is shown, and its statement forgotten") {
  session::TrackBlockPool pool;
  RecordingReplySink sink(pool);
  pool::Backend b;
  b.statements.insert(7, 0);
  sink.sess = std::make_unique<session::ClientSession>();
  sink.expect(Expect::kParse, Reply::kSwallow, 7);
  sink.expect(Expect::kBind);
  sink.expect(Expect::kExecute);
  sink.expect(Expect::kSync);
  std::string reply;
  pg::write_error_response(reply, "ERROR", "42P01", "relation \"gone\" does not exist");
  pg::write_ready_for_query(reply, 'I');
  auto r = feed(b, pool, sink, reply, false);
  // The server skipped the client's Bind/Execute: the client must see why.
  CHECK(types(sink.to_client) == "EZ");
  CHECK(!b.statements.contains(7));
  CHECK(sink.sess->request_failed);
  CHECK(!r.desync);
}

TEST_CASE("reply decoder: a FATAL between transactions loses the backend, not the client") {
  for (bool between : {true, false}) {
    CAPTURE(between);
    session::TrackBlockPool pool;
    RecordingReplySink sink(pool);
    sink.between = between;
    pool::Backend b;
    std::string reply;
    pg::write_error_response(reply, "FATAL", "57P01",
                             "terminating connection due to administrator command");
    auto r = feed(b, pool, sink, reply, false);
    CHECK(b.broken);
    CHECK(r.died_between == between);
    CHECK(sink.to_client.empty() == between);
  }
}

TEST_CASE("reply decoder: a FATAL the client survives is not forwarded, idle or answering") {
  for (bool answering : {false, true}) {
    for (bool survives : {false, true}) {
      CAPTURE(answering);
      CAPTURE(survives);
      session::TrackBlockPool pool;
      RecordingReplySink sink(pool);
      sink.survives = survives;
      if (answering) sink.expect(Expect::kQuery);  // a statement in flight
      pool::Backend b;
      std::string reply;
      if (answering) pg::write_command_complete(reply, "INSERT 0 1");  // part of its answer
      pg::write_error_response(reply, "FATAL", "57P01",
                               "terminating connection due to administrator command");
      auto r = feed(b, pool, sink, reply, false);
      CHECK(b.broken);
      CHECK(!r.died_between);
      CHECK(r.lost == survives);
      if (survives) {
        CHECK(r.lost_message == "terminating connection due to administrator command");
        CHECK(types(sink.to_client) == (answering ? "C" : ""));
        CHECK(sink.tracker().size() == (answering ? 1u : 0u));  // still owed: the worker fails it
      } else {
        CHECK(types(sink.to_client) == (answering ? "CE" : "E"));
      }
    }
  }
}

TEST_CASE("reply decoder: a reply nobody asked for is a desync") {
  session::TrackBlockPool pool;
  RecordingReplySink sink(pool);
  pool::Backend b;
  std::string reply;
  pg::write_command_complete(reply, "SELECT 1");
  auto r = feed(b, pool, sink, reply, false);
  CHECK(r.desync);
}

TEST_CASE(
    "reply decoder: a SET of a reported parameter is carried; notices always reach the client") {
  session::TrackBlockPool pool;
  RecordingReplySink sink(pool);
  pool::Backend b;
  sink.expect(Expect::kQuery);
  std::string reply;
  pg::write_parameter_status(reply, "TimeZone", "Asia/Tokyo");
  pg::write_notice_response(reply, "NOTICE", "00000", "hello");
  pg::write_command_complete(reply, "SET");
  pg::write_ready_for_query(reply, 'I');
  feed(b, pool, sink, reply, true);
  CHECK(types(sink.to_client) == "SNCZ");
  REQUIRE(sink.client_params.size() == 1);
  CHECK(sink.client_params[0].first == "timezone");
  CHECK(sink.client_params[0].second == "Asia/Tokyo");
  bool recorded = false;
  for (const auto& [k, v] : b.params) recorded = recorded || (k == "TimeZone" && v == "Asia/Tokyo");
  CHECK(recorded);
}

TEST_CASE("reply decoder: after the client left, the proxy's cleanup replies go nowhere") {
  session::TrackBlockPool pool;
  RecordingReplySink sink(pool);
  sink.attached_ = false;
  pool::Backend b;
  b.swallow_rfq = 1;
  std::string reply;
  pg::write_command_complete(reply, "ROLLBACK");
  pg::write_ready_for_query(reply, 'I');
  feed(b, pool, sink, reply, false);
  CHECK(sink.to_client.empty());
  CHECK(b.swallow_rfq == 0);
  CHECK(b.tx_status == 'I');
}

TEST_CASE("reply decoder: a statement cancelled for max_transaction_duration says so") {
  session::TrackBlockPool pool;
  RecordingReplySink sink(pool);
  sink.duration_cancelled = true;
  pool::Backend b;
  sink.expect(Expect::kQuery);
  std::string reply;
  pg::write_error_response(reply, "ERROR", "57014", "canceling statement due to user request");
  pg::write_ready_for_query(reply, 'T');
  feed(b, pool, sink, reply, false);
  auto got = messages(sink.to_client);
  REQUIRE(got.size() == 2);
  CHECK(got[0].body.find("too long") != std::string::npos);
  CHECK(got[0].body.find("user request") == std::string::npos);
  CHECK(sink.ready == std::vector<char>{'T'});
}
