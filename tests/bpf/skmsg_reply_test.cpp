// The sk_msg reply path component (bpf/skmsg_reply.bpf.c through SkmsgReply): a "database"
// socket accepted on the configured port joins skmsg_socks by itself (sockops); once routed to a
// lease slot and armed, what it sends is redirected to the egress of the relay's client socket,
// so the application reads it and the relay reads nothing, byte for byte, until the
// ReadyForQuery 'I' that ends the lease (also when that ReadyForQuery is split across two
// sendmsg calls, and when more bytes follow it in the same sendmsg: those go to the relay).
#include <doctest/doctest.h>

#include <fcntl.h>

#include <algorithm>
#include <string>

#include "bpf/bpf_error.h"
#include "bpf/skeleton.h"
#include "bpf/skmsg_reply.h"
#include "helios/skmsg_reply.skel.h"
#include "map_abi.h"
#include "splice_harness.h"

using namespace helios;
using namespace helios::bpf;
using namespace helios::bpf::test;

namespace {

// The bypass's features (sockops, sk_msg) and what attach() needs besides (a raw tracepoint):
// skipped, with the reason printed, when this kernel or this process lacks them.
bool skip_skmsg_tests() {
  static const bool skip = [] {
    if (skip_bypass_tests()) return true;
    auto r = SkmsgReply::attach({1, ""});
    if (r.ok() || !is_missing_feature(r.error())) return false;  // other errors fail the tests
    return !skip_reason(Status(r.error()), "skmsg reply tests").empty();
  }();
  return skip;
}

SkmsgReply must_attach(uint16_t db_port) {
  auto r = SkmsgReply::attach({db_port, ""});
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  return std::move(*r);
}

skmsg_stats must_stats(const SkmsgReply& sk) {
  auto s = sk.stats();
  REQUIRE(s.ok());
  return *s;
}

// db: the relay's connection to the "database" (client = relay's socket, server = the
// database's socket, the one in skmsg_socks). app: the application's connection to the relay
// (client = the application, server = the relay's client socket, the redirect target).
struct Rig {
  Listener db_listener = listen_loopback();
  Listener front = listen_loopback();
  SkmsgReply sk = must_attach(db_listener.port);
  TcpPair db = connect_pair(db_listener);
  TcpPair app = connect_pair(front);
  static constexpr uint32_t kSlot = 7;

  Rig() {
    REQUIRE(eventually([&] { return sk.backend_in_map(db.client.get()).value(); }));
    REQUIRE(sk.route(db.client.get(), kSlot, app.server.get()).ok());
  }
  int database() const { return db.server.get(); }
  int relay_backend() const { return db.client.get(); }
  int application() const { return app.client.get(); }
};

}  // namespace

TEST_CASE("skmsg_reply maps carry the ABI names and sizes") {
  auto s = Skeleton<skmsg_reply>::open();
  REQUIRE(s.ok());
  auto& m = (*s)->maps;
  helios::bpf::testing::check_map_abi({
      {m.skmsg_socks, HELIOS_MAP_SKMSG_SOCKS, sizeof(sock_tuple_key), 8},
      {m.skmsg_targets, HELIOS_MAP_SKMSG_TARGETS, 4, 8},
      {m.skmsg_routes, HELIOS_MAP_SKMSG_ROUTES, sizeof(sock_tuple_key), 4},
      {m.skmsg_leases, HELIOS_MAP_SKMSG_LEASES, 4, sizeof(skmsg_lease)},
      {m.skmsg_config, HELIOS_MAP_SKMSG_CONFIG, 4, sizeof(skmsg_config)},
      {m.skmsg_stats, HELIOS_MAP_SKMSG_STATS, 4, sizeof(skmsg_stats)},
  });
}

TEST_CASE("skmsg reply: replies go to the client's egress until ReadyForQuery 'I', split or not" *
          doctest::skip(skip_skmsg_tests())) {
  Rig r;
  // Not armed: the database's bytes take the TCP way to the relay.
  REQUIRE(send_all(r.database(), pgm::ready('I')));
  CHECK(recv_exact(r.relay_backend(), 6) == pgm::ready('I'));
  CHECK(recv_available(r.application(), 20).empty());
  skmsg_stats s0 = must_stats(r.sk);
  CHECK(s0.added >= 1);
  CHECK(s0.passed >= 1);
  CHECK(s0.redirected == 0);

  // Armed: a reply with a 100 KB DataRow and a ReadyForQuery whose status byte comes in a second
  // sendmsg.
  r.sk.arm(Rig::kSlot);
  const std::string head = pgm::msg('T', std::string(30, 't')) + pgm::data_row(100000) +
                           pgm::command_complete("SELECT 1");
  const std::string z = pgm::ready('I');
  REQUIRE(send_all(r.database(), head + z.substr(0, 5)));
  CHECK(recv_exact(r.application(), head.size() + 5) == head + z.substr(0, 5));
  CHECK(r.sk.armed(Rig::kSlot));  // the status byte is still to come
  CHECK(r.sk.lease(Rig::kSlot).ended == 0);
  REQUIRE(send_all(r.database(), z.substr(5)));
  CHECK(recv_exact(r.application(), 1) == "I");
  CHECK(!r.sk.armed(Rig::kSlot));
  skmsg_lease l = r.sk.lease(Rig::kSlot);
  CHECK(l.ended == 1);
  CHECK(l.rfq == 1);
  CHECK(l.msgs == 4);
  CHECK(l.bytes == head.size() + z.size());
  CHECK(l.error == 0);
  CHECK(inq(r.relay_backend()) == 0);  // the relay got none of it

  // After the end: back to TCP, to the relay.
  REQUIRE(send_all(r.database(), pgm::msg('N', "notice")));
  CHECK(recv_exact(r.relay_backend(), 11) == pgm::msg('N', "notice"));
  CHECK(recv_available(r.application(), 20).empty());

  // Bytes after the 'I' in the same sendmsg are cut off (apply_bytes) and go to the relay; a
  // ReadyForQuery 'T' (transaction open) does not end the lease.
  r.sk.arm(Rig::kSlot);
  const std::string in_txn = pgm::response(10, 'T');
  const std::string last = pgm::response(20, 'I');
  const std::string after = pgm::msg('A', std::string(12, 'n'));
  REQUIRE(send_all(r.database(), in_txn + last + after));
  CHECK(recv_exact(r.application(), in_txn.size() + last.size()) == in_txn + last);
  CHECK(recv_exact(r.relay_backend(), after.size()) == after);
  CHECK(recv_available(r.application(), 20).empty());
  l = r.sk.lease(Rig::kSlot);
  CHECK(l.ended == 2);
  CHECK(l.rfq == 3);
  CHECK(l.last_status == 'I');

  // More messages in one sendmsg than the program frames in one run, then a header split
  // across two sendmsg calls: all redirected, in order, one end.
  r.sk.arm(Rig::kSlot);
  std::string many;
  for (int i = 0; i < 600; ++i) many += pgm::data_row(size_t(10 + i % 7));
  const std::string cc = pgm::command_complete("SELECT 600");
  REQUIRE(send_all(r.database(), many + cc.substr(0, 3)));
  REQUIRE(send_all(r.database(), cc.substr(3) + z));
  CHECK(recv_exact(r.application(), many.size() + cc.size() + z.size()) == many + cc + z);
  CHECK(inq(r.relay_backend()) == 0);
  l = r.sk.lease(Rig::kSlot);
  CHECK(l.ended == 3);
  CHECK(!r.sk.armed(Rig::kSlot));

  skmsg_stats s = must_stats(r.sk);
  CHECK(s.split >= 2);  // the cut after the 'I' and the walk limit
  CHECK(s.framing_errors == 0);
  CHECK(s.redirect_failed == 0);
  CHECK(s.rfq_idle == 3);
  CHECK(s.bytes_redirected ==
        head.size() + z.size() + in_txn.size() + last.size() + many.size() + cc.size() + z.size());
}

TEST_CASE("skmsg reply: a stream that is not PostgreSQL's framing goes to the relay whole" *
          doctest::skip(skip_skmsg_tests())) {
  Rig r;
  r.sk.arm(Rig::kSlot);
  std::string bad("D\0\0\0\1xyz", 8);  // length 1 < 4
  REQUIRE(send_all(r.database(), bad));
  CHECK(recv_exact(r.relay_backend(), bad.size()) == bad);
  CHECK(recv_available(r.application(), 20).empty());
  CHECK(!r.sk.armed(Rig::kSlot));
  CHECK(r.sk.lease(Rig::kSlot).error == 1);
  CHECK(must_stats(r.sk).framing_errors == 1);
  // Unrouted: the database's socket stays in the map but nothing is redirected any more.
  REQUIRE(r.sk.unroute(r.relay_backend(), Rig::kSlot).ok());
  r.sk.arm(Rig::kSlot);
  REQUIRE(send_all(r.database(), pgm::ready('I')));
  CHECK(recv_exact(r.relay_backend(), 6) == pgm::ready('I'));
  CHECK(recv_available(r.application(), 20).empty());
}

TEST_CASE("skmsg reply: a redirect into a full client buffer is sent again, framed once" *
          doctest::skip(skip_skmsg_tests())) {
  Rig r;
  // A small client send buffer and a slow reader make redirects fail part-way; the database's
  // socket is non-blocking like PostgreSQL's, so it gets short writes and sends the rest again.
  int small = 4096;
  setsockopt(r.app.server.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  setsockopt(r.application(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  int fl = fcntl(r.database(), F_GETFL);
  REQUIRE(fcntl(r.database(), F_SETFL, fl | O_NONBLOCK) == 0);
  std::string reply;
  for (int i = 0; i < 300; ++i) reply += pgm::data_row(size_t(900 + i % 200));
  reply += pgm::command_complete("SELECT 300") + pgm::ready('I');
  std::string got;
  JoinedThread reader(
      [&] {
        char buf[1024];
        while (got.size() < reply.size()) {
          pollfd pfd{r.application(), POLLIN, 0};
          if (poll(&pfd, 1, 5000) <= 0) return;
          ssize_t n = recv(r.application(), buf, sizeof(buf), 0);
          if (n <= 0) return;
          got.append(buf, size_t(n));
          if (got.size() % 65536 < 1024) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      },
      [&] { shutdown(r.application(), SHUT_RDWR); });
  r.sk.arm(Rig::kSlot);
  size_t off = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (off < reply.size() && std::chrono::steady_clock::now() < until) {
    size_t chunk = std::min<size_t>(8192, reply.size() - off);  // PostgreSQL's send buffer
    ssize_t n = send(r.database(), reply.data() + off, chunk, MSG_NOSIGNAL);
    if (n > 0)
      off += size_t(n);
    else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      break;
  }
  REQUIRE(off == reply.size());
  reader.join();
  CHECK(got.size() == reply.size());
  CHECK(got == reply);
  CHECK(inq(r.relay_backend()) == 0);
  skmsg_lease l = r.sk.lease(Rig::kSlot);
  skmsg_stats s = must_stats(r.sk);
  CHECK(l.ended == 1);
  CHECK(l.error == 0);
  CHECK(l.msgs == 302);
  CHECK(l.bytes == reply.size());
  CHECK(s.framing_errors == 0);
  // The case this test is for did happen (if it did not, the buffers were too big to fill).
  CHECK(s.redirect_errors > 0);
  CHECK(l.replayed > 0);
  MESSAGE("failed redirects: " << s.redirect_errors << ", bytes sent again: " << l.replayed
                               << ", lease ends redone after a dropped 'I': " << s.ends_redone);
}
