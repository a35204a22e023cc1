// The hand-off protocol between user space and the kernel (docs/datapath.md): what happens to
// bytes that race a decision, and what user space learns. Every race here is forced or repeated
// until both outcomes were seen, and each outcome is checked for its invariant.
#include <doctest/doctest.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>

#include "splice_rig.h"

using namespace helios;
using namespace helios::bpf;
using namespace helios::bpf::test;

TEST_CASE("hand-off: bytes that reached user space before splice refuse the activation" *
          doctest::skip(skip_splice_tests())) {
  SpliceRig r;
  // The backend answers before the worker got around to reading: those bytes are passed up
  // (no lease yet) and sit unread when the worker splices with consumed = what it has read.
  std::string early = pgm::data_row(10);
  REQUIRE(send_all(r.pg(), early));
  REQUIRE(r.seen(r.b.cookie, early.size()));
  CHECK(r.state(r.b.cookie).passed_bytes == early.size());
  r.splice(SPLICE_MODE_TRANSACTION, 1);
  std::string rest = pgm::command_complete("SELECT 1") + pgm::ready('I');
  REQUIRE(send_all(r.pg(), rest));
  // The kernel did not forward `rest` ahead of `early`: both come up, in order.
  CHECK(r.read_b(early.size() + rest.size()) == early + rest);
  CHECK(recv_available(r.app(), 50).empty());
  auto evs = r.events();
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].reason == SPLICE_R_NOT_CAUGHT_UP);
  CHECK(r.lease().state == SPLICE_LEASE_HANDED_BACK);
  auto st = r.eng.stats();
  REQUIRE(st.ok());
  CHECK(st->activations_refused == 1);
  // Once user space has consumed everything, the same sockets splice fine.
  r.release();
  r.splice(SPLICE_MODE_TRANSACTION, 1);
  std::string resp = pgm::response(4);
  REQUIRE(send_all(r.pg(), resp));
  CHECK(recv_exact(r.app(), resp.size()) == resp);
  CHECK(eventually([&] { return r.lease().state == SPLICE_LEASE_ENDED; }));
}

TEST_CASE("hand-off: unsplice in the middle of a message reports where user space resumes" *
          doctest::skip(skip_splice_tests())) {
  SpliceRig r;
  r.splice(SPLICE_MODE_SESSION, 1);
  std::string row = pgm::data_row(1000);
  std::string first = row.substr(0, 300), second = row.substr(300);
  REQUIRE(send_all(r.pg(), first));
  CHECK(recv_exact(r.app(), first.size()) == first);
  auto snap = r.eng.unsplice(r.c.cookie, r.seq);
  REQUIRE(snap.ok());
  CHECK(snap->prev_state == SPLICE_LEASE_ACTIVE);
  CHECK(snap->state == SPLICE_LEASE_HANDED_BACK);
  CHECK(snap->reason == SPLICE_R_USER);
  CHECK(snap->outstanding == 1);
  // A second unsplice is a no-op that says the lease is already back.
  auto again = r.eng.unsplice(r.c.cookie, r.seq);
  REQUIRE(again.ok());
  CHECK(again->prev_state == SPLICE_LEASE_HANDED_BACK);
  // Wrong sequence number: refused.
  CHECK(r.eng.unsplice(r.c.cookie, r.seq + 1).error().code == ESTALE);

  std::string tail = second + pgm::command_complete("SELECT 1") + pgm::ready('I');
  REQUIRE(send_all(r.pg(), tail));
  CHECK(r.read_b(tail.size()) == tail);
  auto h = r.eng.handback(r.b.cookie);
  REQUIRE(h.ok());
  CHECK(h->happened);
  CHECK(h->at == 0);                          // the first passed-up byte of this socket
  CHECK(h->frame.msg_left == second.size());  // ... is inside the DataRow, this far from its end
  CHECK(h->frame.type == 'D');
  CHECK(h->reason == SPLICE_R_USER);
  CHECK(recv_available(r.app(), 50).empty());
  CHECK(r.events().empty());  // user-requested: no event, the caller has the snapshot
}

TEST_CASE("hand-off: a partial header at unsplice is carried in the hand-back record" *
          doctest::skip(skip_splice_tests())) {
  SpliceRig r;
  r.splice(SPLICE_MODE_SESSION, 1);
  std::string rfq = pgm::ready('I');
  REQUIRE(send_all(r.pg(), rfq.data(), 3));
  CHECK(recv_exact(r.app(), 3) == rfq.substr(0, 3));
  REQUIRE(r.eng.unsplice(r.c.cookie, r.seq).ok());
  REQUIRE(send_all(r.pg(), rfq.data() + 3, rfq.size() - 3));
  CHECK(r.read_b(rfq.size() - 3) == rfq.substr(3));
  auto h = r.eng.handback(r.b.cookie);
  REQUIRE(h.ok());
  CHECK(h->frame.hdr_have == 3);
  CHECK(h->frame.hdr[0] == 'Z');
  CHECK(h->frame.msg_left == 0);
}

TEST_CASE("hand-off: the next query racing the lease end goes to exactly one place" *
          doctest::skip(skip_splice_tests())) {
  // The backend's ReadyForQuery 'I' and the client's next Query are sent at the same moment
  // from two threads. Either the Query was counted first (forwarded to the backend, the lease
  // stays, outstanding 1) or the lease ended first (the Query comes up to user space). Never
  // both, never neither.
  SpliceRig r;
  const std::string rfq = pgm::ready('I');
  const std::string q2 = pgm::query("SELECT 2");
  int forwarded = 0, passed = 0;
  for (int i = 0; i < 300; ++i) {
    CAPTURE(i);
    r.splice(SPLICE_MODE_TRANSACTION, 1);
    std::atomic<int> go{0};
    bool sent = false;
    JoinedThread t(
        [&] {
          go.fetch_add(1);
          while (go.load() < 2) {
          }
          sent = send_all(r.pg(), rfq);
        },
        [&] { shutdown(r.pg(), SHUT_RDWR); });
    go.fetch_add(1);
    while (go.load() < 2) {
    }
    REQUIRE(send_all(r.app(), q2));
    t.join();
    REQUIRE(sent);
    CHECK(recv_exact(r.app(), rfq.size()) == rfq);
    std::string at_pg = recv_available(r.pg(), 5);
    std::string at_user;
    if (at_pg.empty()) at_user = r.read_c(q2.size());
    auto l = r.lease();
    auto evs = r.events();
    if (at_pg == q2) {
      ++forwarded;
      CHECK(l.state == SPLICE_LEASE_ACTIVE);
      CHECK(l.outstanding == 1);
      CHECK(evs.empty());
      CHECK(recv_available(r.proxy_c(), 0).empty());
      // Answer it so the lease ends cleanly before the next round.
      REQUIRE(send_all(r.pg(), rfq));
      CHECK(recv_exact(r.app(), rfq.size()) == rfq);
      CHECK(eventually([&] { return r.lease().state == SPLICE_LEASE_ENDED; }));
      (void)r.events();
    } else {
      ++passed;
      CHECK(at_pg.empty());
      CHECK(at_user == q2);
      CHECK(l.state == SPLICE_LEASE_ENDED);
      REQUIRE(evs.size() == 1);
      CHECK(evs[0].kind == SPLICE_EV_LEASE_ENDED);
    }
    r.release();
  }
  MESSAGE("query forwarded before the end: " << forwarded << ", after (to user space): " << passed);
  CHECK(forwarded + passed == 300);
  CHECK(passed > 0);
}

TEST_CASE("hand-off: after a hand-back user space can tell when the kernel's bytes are out" *
          doctest::skip(skip_splice_tests())) {
  SpliceRig r;
  r.splice(SPLICE_MODE_SESSION, 1);
  // A large result forwarded by the kernel into proxy_c, then an unsplice.
  const std::string big = pgm::data_row(4 * 1024 * 1024);
  bool sent = false;
  JoinedThread sender([&] { sent = send_all(r.pg(), big); }, [&] { shutdown(r.pg(), SHUT_RDWR); });
  // Let the kernel forward some of it, then take the lease back while bytes are in flight.
  REQUIRE(eventually([&] { return r.state(r.c.cookie).redirected_in > 0; }));
  auto snap = r.eng.unsplice(r.c.cookie, r.seq);
  REQUIRE(snap.ok());
  // The app reads everything (the kernel part, then what user space relays).
  std::string at_app;
  JoinedThread reader([&] { at_app = recv_exact(r.app(), big.size(), 10000); },
                      [&] { shutdown(r.app(), SHUT_RDWR); });
  const uint64_t redirected = r.state(r.c.cookie).redirected_in;
  // The fence: once drained, user-space writes to proxy_c land after the kernel's bytes.
  CHECK(eventually([&] { return r.eng.drained(r.proxy_c(), r.c, 0).value(); }, 10000));
  // Relay the rest from user space as a worker does, reading while the kernel passes bytes up
  // (left unread, they fill proxy_b's receive buffer and TCP stops the sender).
  const uint64_t want = big.size() - redirected;
  uint64_t relayed = 0;
  while (relayed < want) {
    std::string part = r.read_b(size_t(std::min<uint64_t>(want - relayed, 64 * 1024)));
    if (part.empty()) break;
    REQUIRE(send_all(r.proxy_c(), part));
    relayed += part.size();
  }
  sender.join();
  REQUIRE(sent);
  reader.join();
  // What user space was handed is exactly what the kernel says it passed up.
  CHECK(redirected + relayed == big.size());
  CHECK(r.state(r.b.cookie).passed_bytes == relayed);
  CHECK(at_app.size() == big.size());
  CHECK(at_app == big);
  CHECK(r.eng.drained(r.proxy_c(), r.c, relayed).value());
}

TEST_CASE("hand-off: events go to the ring of the lease's worker" *
          doctest::skip(skip_splice_tests())) {
  SpliceRig r(3);
  LeaseInfo li;
  li.seq = 77;
  li.tenant_id = r.tenant;
  li.worker = 2;
  li.outstanding = 1;
  REQUIRE(r.eng.splice(r.c.cookie, r.b.cookie, li, r.consumed).ok());
  r.seq = 77;
  std::string resp = pgm::response(2);
  REQUIRE(send_all(r.pg(), resp));
  CHECK(recv_exact(r.app(), resp.size()) == resp);
  pollfd pfd{r.eng.event_ring(2).fd(), POLLIN, 0};
  CHECK(poll(&pfd, 1, 2000) == 1);  // the worker's ring fd is pollable
  CHECK(r.eng.event_ring(0).drain().empty());
  CHECK(r.eng.event_ring(1).drain().empty());
  auto evs = r.eng.event_ring(2).drain();
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].lease_seq == 77);
}
