#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "proxy/preauth_sources.h"

using namespace helios::proxy;

namespace {

sockaddr_storage v4(const char* a) {
  sockaddr_storage ss{};
  auto& s = reinterpret_cast<sockaddr_in&>(ss);
  s.sin_family = AF_INET;
  inet_pton(AF_INET, a, &s.sin_addr);
  return ss;
}

sockaddr_storage v6(const char* a) {
  sockaddr_storage ss{};
  auto& s = reinterpret_cast<sockaddr_in6&>(ss);
  s.sin6_family = AF_INET6;
  inet_pton(AF_INET6, a, &s.sin6_addr);
  return ss;
}

}  // namespace

TEST_CASE("source_key_of: IPv4 by address, IPv6 by /64, mapped IPv4 as IPv4") {
  auto a = source_key_of(v4("192.0.2.1"));
  auto b = source_key_of(v4("192.0.2.2"));
  REQUIRE(a);
  REQUIRE(b);
  CHECK_FALSE(*a == *b);
  CHECK(*source_key_of(v6("::ffff:192.0.2.1")) == *a);
  CHECK(*source_key_of(v6("2001:db8:1:2::1")) == *source_key_of(v6("2001:db8:1:2:ffff::9")));
  CHECK_FALSE(*source_key_of(v6("2001:db8:1:2::1")) == *source_key_of(v6("2001:db8:1:3::1")));
  sockaddr_storage unix_peer{};
  unix_peer.ss_family = AF_UNIX;
  CHECK_FALSE(source_key_of(unix_peer));
  CHECK(peer_text(v4("192.0.2.1")) == "192.0.2.1");
  CHECK(peer_text(unix_peer) == "local");
}

TEST_CASE("PreauthSources: a limit per source, freed on leave, nothing kept for idle sources") {
  PreauthSources p;
  auto a = *source_key_of(v4("192.0.2.1"));
  auto b = *source_key_of(v4("192.0.2.2"));
  CHECK(p.try_enter(a, 2));
  CHECK(p.try_enter(a, 2));
  CHECK_FALSE(p.try_enter(a, 2));
  CHECK(p.try_enter(b, 2));  // another source is not affected
  CHECK(p.count(a) == 2);
  p.leave(a);
  CHECK(p.try_enter(a, 2));
  p.leave(a);
  p.leave(a);
  p.leave(b);
  CHECK(p.sources() == 0);
  CHECK_FALSE(p.try_enter(a, 0) == false);  // 0 = unlimited
  for (int i = 0; i < 1000; ++i) CHECK(p.try_enter(b, 0));
}
