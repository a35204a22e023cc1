// The cancel forwarder (fleet/cancel_forwarder.*) on real loopback sockets: a request for a known
// peer arrives there as 16 bytes, unknown peers and dead addresses are counted, and its own
// cancel listener hands what it reads to the proxy.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/unique_fd.h"
#include "fleet/cancel_forwarder.h"
#include "fleet/peer_info.h"

using namespace helios;
using namespace helios::fleet;

namespace {

// A loopback listener on a kernel-chosen port.
UniqueFd listen_loopback(uint16_t& port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd.get(), 8) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

PeerAddress peer_at(uint32_t number, uint16_t port) {
  PeerAddress p;
  p.peer = number;
  REQUIRE(parse_numeric_address("127.0.0.1:" + std::to_string(port), p));
  return p;
}

template <typename F>
bool eventually(F f) {
  for (int i = 0; i < 300; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

TEST_CASE("a request for a known peer arrives at its address as a CancelRequest") {
  uint16_t port = 0;
  UniqueFd owner = listen_loopback(port);
  CancelForwarder fwd;
  fwd.start();
  fwd.set_peers({peer_at(4, port)});
  CHECK(fwd.forward(4, int32_t(0x80000000u | 0x41234567u), 0x7eadbeef) ==
        CancelForwarder::Outcome::kQueued);
  pollfd p{owner.get(), POLLIN, 0};
  REQUIRE(::poll(&p, 1, 3000) == 1);
  UniqueFd conn(::accept(owner.get(), nullptr, nullptr));
  unsigned char buf[16];
  size_t got = 0;
  while (got < sizeof buf) {
    ssize_t n = ::recv(conn.get(), buf + got, sizeof buf - got, 0);
    REQUIRE(n > 0);
    got += size_t(n);
  }
  uint32_t v[4];
  std::memcpy(v, buf, sizeof v);
  CHECK(ntohl(v[0]) == 16);
  CHECK(ntohl(v[1]) == 80877102u);
  CHECK(ntohl(v[2]) == (0x80000000u | 0x41234567u));
  CHECK(ntohl(v[3]) == 0x7eadbeefu);
  CHECK(eventually([&] { return fwd.counters().forwarded == 1; }));
  // Unknown numbers are not sent anywhere.
  CHECK(fwd.forward(5, 1, 1) == CancelForwarder::Outcome::kUnknownPeer);
  CHECK(fwd.counters().unknown_peer == 1);
  fwd.stop();
}

TEST_CASE("a peer whose address refuses is counted unreachable") {
  uint16_t port = 0;
  { UniqueFd gone = listen_loopback(port); }  // closed: connections are refused
  CancelForwarder fwd;
  fwd.start();
  fwd.set_peers({peer_at(2, port)});
  CHECK(fwd.forward(2, 1, 1) == CancelForwarder::Outcome::kQueued);
  CHECK(eventually([&] { return fwd.counters().unreachable == 1; }));
  CHECK(fwd.counters().forwarded == 0);
}

TEST_CASE("the cancel listener hands each 16-byte CancelRequest to the proxy, nothing else") {
  uint16_t port = 0;
  { UniqueFd probe = listen_loopback(port); }  // a port free a moment ago
  std::atomic<int> delivered{0};
  std::atomic<int32_t> pid{0}, key{0};
  CancelForwarder fwd;
  REQUIRE(fwd.listen({"127.0.0.1", port},
                     [&](int32_t p, int32_t k) {
                       pid = p;
                       key = k;
                       delivered++;
                     })
              .ok());
  fwd.start();
  auto send_bytes = [&](const void* data, size_t n) {
    UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::send(c.get(), data, n, 0) == ssize_t(n));
    char x;
    CHECK(::recv(c.get(), &x, 1, 0) == 0);  // no answer, closed
  };
  uint32_t startup[4] = {htonl(16), htonl(196608), htonl(1), htonl(2)};  // not a cancel
  send_bytes(startup, sizeof startup);
  uint32_t cancel[4] = {htonl(16), htonl(80877102), htonl(0x40010203), htonl(0x11223344)};
  send_bytes(cancel, sizeof cancel);
  CHECK(eventually([&] { return delivered.load() == 1; }));
  CHECK(pid.load() == 0x40010203);
  CHECK(key.load() == 0x11223344);
  CHECK(fwd.counters().received == 1);
}
