#include <doctest/doctest.h>

#include <string>

#include "session/response_tracker.h"

using namespace helios::session;

namespace {

// Feeds backend message types through the tracker, returning what the client would see:
// forwarded types, plus '1'/'3' for synthesized replies, in order.
std::string client_sees(ResponseTracker& t, TrackBlockPool& pool, const std::string& backend) {
  std::string out;
  auto emit = [&](Reply r) {
    out += r == Reply::kSynthParse ? '1' : r == Reply::kSynthClose ? '3' : 'Z';
  };
  t.drain_synthetic(pool, emit);
  for (char type : backend) {
    auto o = t.on_backend_message(pool, type);
    REQUIRE_FALSE(o.unexpected);
    if (o.forward) out += type;
    t.drain_synthetic(pool, emit);
  }
  return out;
}

}  // namespace

TEST_CASE("skipped Parse gets a ParseComplete in its place") {
  TrackBlockPool pool;
  ResponseTracker t;
  // Client pipeline: Bind/Execute of S0, Parse S1 (skipped: already on the backend), Bind,
  // Execute, Sync.
  t.push(pool, Expect::kBind, Reply::kForward);
  t.push(pool, Expect::kExecute, Reply::kForward);
  t.push(pool, Expect::kParse, Reply::kSynthParse);
  t.push(pool, Expect::kBind, Reply::kForward);
  t.push(pool, Expect::kExecute, Reply::kForward);
  t.push(pool, Expect::kSync, Reply::kForward);
  CHECK(client_sees(t, pool, "2DC2DDCZ") == "2DC12DDCZ");
  CHECK(t.empty());
}

TEST_CASE("a synthetic reply at the head goes out at once") {
  TrackBlockPool pool;
  ResponseTracker t;
  t.push(pool, Expect::kClose, Reply::kSynthClose);
  t.push(pool, Expect::kSync, Reply::kForward);
  CHECK(client_sees(t, pool, "Z") == "3Z");
}

TEST_CASE("injected Parse replies are swallowed") {
  TrackBlockPool pool;
  ResponseTracker t;
  t.push(pool, Expect::kBind, Reply::kForward);
  t.push(pool, Expect::kExecute, Reply::kForward);
  t.push(pool, Expect::kSync, Reply::kForward);
  // Re-prepare on this backend before the client's Bind.
  t.push_front(pool, Expect::kParse, Reply::kSwallow, 7);
  CHECK(client_sees(t, pool, "12DCZ") == "2DCZ");
}

TEST_CASE("after an error everything up to Sync is skipped, synthetic replies included") {
  TrackBlockPool pool;
  ResponseTracker t;
  t.push(pool, Expect::kParse, Reply::kForward);
  t.push(pool, Expect::kBind, Reply::kForward);
  t.push(pool, Expect::kParse, Reply::kSynthParse);
  t.push(pool, Expect::kExecute, Reply::kForward);
  t.push(pool, Expect::kSync, Reply::kForward);
  t.push(pool, Expect::kParse, Reply::kSynthParse);  // next batch
  t.push(pool, Expect::kSync, Reply::kForward);
  // Parse fails: no '2', no synthetic '1', no rows; then Z; then the next batch.
  CHECK(client_sees(t, pool, "EZZ") == "EZ1Z");
  CHECK(t.empty());
}

TEST_CASE("a simple query runs to its ReadyForQuery, error or not") {
  TrackBlockPool pool;
  ResponseTracker t;
  t.push(pool, Expect::kQuery, Reply::kSwallow);  // injected SET
  t.push(pool, Expect::kQuery, Reply::kForward);
  CHECK(client_sees(t, pool, "CZTDCEZ") == "TDCEZ");
}

TEST_CASE("describe statement takes two replies; many entries span blocks") {
  TrackBlockPool pool;
  ResponseTracker t;
  std::string backend, expect;
  for (int i = 0; i < 100; ++i) {
    t.push(pool, Expect::kDescribeStmt, Reply::kForward);
    t.push(pool, Expect::kParse, i % 2 ? Reply::kSynthParse : Reply::kForward);
    backend += "tT";
    expect += "tT";
    if (i % 2 == 0) backend += '1';
    expect += '1';
  }
  t.push(pool, Expect::kSync, Reply::kForward);
  backend += 'Z';
  expect += 'Z';
  CHECK(client_sees(t, pool, backend) == expect);
  CHECK(t.empty());
  for (int i = 0; i < 40; ++i) t.push_front(pool, Expect::kQuery, Reply::kSwallow);
  CHECK(t.size() == 40);
  t.clear(pool);
  CHECK(t.empty());
}

TEST_CASE("a reply nobody asked for is reported") {
  TrackBlockPool pool;
  ResponseTracker t;
  CHECK(t.on_backend_message(pool, 'Z').unexpected);
  t.push(pool, Expect::kParse, Reply::kForward);
  CHECK(t.on_backend_message(pool, '2').unexpected);
}

TEST_CASE("a batch the proxy answers alone") {
  TrackBlockPool pool;
  ResponseTracker t;
  t.push(pool, Expect::kParse, Reply::kSynthParse);
  t.push(pool, Expect::kParse, Reply::kSynthParse);
  CHECK(t.only_synthetic());
  t.push(pool, Expect::kSync, Reply::kSynthReady);
  CHECK(client_sees(t, pool, "") == "11Z");
  t.push(pool, Expect::kParse, Reply::kSynthParse);
  t.push(pool, Expect::kBind, Reply::kForward);
  CHECK_FALSE(t.only_synthetic());
}

TEST_CASE("an error before the client sent its Sync: later messages are skipped too") {
  TrackBlockPool pool;
  ResponseTracker t;
  t.push(pool, Expect::kParse, Reply::kForward, 7);
  t.push(pool, Expect::kBind, Reply::kForward);
  CHECK(client_sees(t, pool, "1E") == "1E");
  CHECK_FALSE(t.empty());  // the server still owes the ReadyForQuery of the coming Sync
  // The rest of the block arrives after the error: the server skips all of it.
  t.push(pool, Expect::kParse, Reply::kSwallow, 8);     // a statement the proxy re-prepared
  t.push(pool, Expect::kParse, Reply::kSynthParse, 9);  // one the proxy would have answered
  t.push(pool, Expect::kBind, Reply::kForward, 8);
  t.push(pool, Expect::kExecute, Reply::kForward);
  t.push(pool, Expect::kSync, Reply::kForward);
  std::string skipped;
  auto note = [](void* ctx, const TrackEntry& e) {
    *static_cast<std::string*>(ctx) += std::to_string(e.stmt) + ",";
  };
  std::string out;
  t.drain_synthetic(pool, [&](Reply) { out += '!'; });  // nothing: the Parse was skipped
  auto o = t.on_backend_message(pool, 'Z', note, &skipped);
  CHECK_FALSE(o.unexpected);
  CHECK(o.forward);
  CHECK(out.empty());
  CHECK(skipped == "8,9,8,0,");
  CHECK(t.empty());
  // The next block is tracked normally again.
  t.push(pool, Expect::kQuery, Reply::kForward);
  CHECK(client_sees(t, pool, "TDCZ") == "TDCZ");
  CHECK(t.empty());
}

TEST_CASE("a ReadyForQuery while skipping with no Sync queued is unexpected") {
  TrackBlockPool pool;
  ResponseTracker t;
  t.push(pool, Expect::kBind, Reply::kForward);
  t.on_backend_message(pool, 'E');
  CHECK(t.on_backend_message(pool, 'Z').unexpected);
  t.clear(pool);
  CHECK(t.empty());
}

TEST_CASE("kernel data path: only plain forwarded replies may go through the kernel") {
  TrackBlockPool pool;
  ResponseTracker t;
  CHECK(t.all_forwarded());
  t.push(pool, Expect::kQuery, Reply::kForward);
  t.push(pool, Expect::kParse, Reply::kForward);
  t.push(pool, Expect::kSync, Reply::kForward);
  CHECK(t.all_forwarded());
  t.push(pool, Expect::kQuery, Reply::kSwallow);  // an injected SET
  CHECK_FALSE(t.all_forwarded());
  t.clear(pool);
  t.push(pool, Expect::kBind, Reply::kForward, 7);  // a tracked prepared statement
  CHECK_FALSE(t.all_forwarded());
  t.clear(pool);
  t.push(pool, Expect::kClose, Reply::kSynthClose);
  CHECK_FALSE(t.all_forwarded());
}

TEST_CASE("kernel data path: answered requests are dropped, a half-answered one merges") {
  TrackBlockPool pool;
  ResponseTracker t;
  // Query; Parse/Bind/Execute/Sync; Query — the kernel forwarded the first ReadyForQuery and
  // part of the extended batch's replies (say ParseComplete and BindComplete).
  t.push(pool, Expect::kQuery, Reply::kForward);
  for (Expect e : {Expect::kParse, Expect::kBind, Expect::kExecute, Expect::kSync})
    t.push(pool, e, Reply::kForward);
  t.push(pool, Expect::kQuery, Reply::kForward);
  t.drop_answered(pool, 1);
  CHECK(t.size() == 5);
  t.merge_head_request(pool);
  CHECK(t.size() == 2);
  // What comes now (rows, CommandComplete, ReadyForQuery of the batch, then the last Query's
  // replies) all reaches the client, and each ReadyForQuery closes one request.
  CHECK(client_sees(t, pool, "DCZ") == "DCZ");
  CHECK(t.size() == 1);
  CHECK(client_sees(t, pool, "TDCZ") == "TDCZ");
  CHECK(t.empty());
  // Dropping more than there is leaves it empty; merging an empty tracker is harmless.
  t.push(pool, Expect::kSync, Reply::kForward);
  t.drop_answered(pool, 3);
  CHECK(t.empty());
  t.merge_head_request(pool);
  CHECK(t.empty());
}

TEST_CASE("the session-state probe's replies are the proxy's, an error included") {
  TrackBlockPool pool;
  ResponseTracker t;
  t.push(pool, Expect::kParse, Reply::kProbe);
  t.push(pool, Expect::kBind, Reply::kProbe);
  t.push(pool, Expect::kExecute, Reply::kProbe);
  t.push(pool, Expect::kSync, Reply::kProbe);
  CHECK(t.only_probe());
  CHECK_FALSE(t.all_forwarded());
  CHECK_FALSE(t.only_synthetic());
  std::string probe;
  for (char type : std::string("12DDCZ")) {
    auto o = t.on_backend_message(pool, type);
    REQUIRE_FALSE(o.unexpected);
    CHECK_FALSE(o.forward);
    if (o.probe) probe += type;
  }
  CHECK(probe == "12DDCZ");
  CHECK(t.empty());
  CHECK_FALSE(t.only_probe());

  t.push(pool, Expect::kBind, Reply::kProbe);
  t.push(pool, Expect::kExecute, Reply::kProbe);
  t.push(pool, Expect::kSync, Reply::kProbe);
  t.push(pool, Expect::kQuery, Reply::kForward);  // the client's next statement
  CHECK_FALSE(t.only_probe());
  auto e = t.on_backend_message(pool, 'E');  // Bind failed: skipped to the Sync
  CHECK(e.probe);
  CHECK_FALSE(e.forward);
  auto z = t.on_backend_message(pool, 'Z');
  CHECK(z.probe);
  auto next = t.on_backend_message(pool, 'C');
  CHECK(next.forward);
  CHECK_FALSE(next.probe);
}
