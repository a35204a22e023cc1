// Reading the peer number and cancel address other instances publish (fleet/peer_info.*).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "fleet/peer_info.h"

using namespace helios::fleet;

TEST_CASE("a membership record with a number and a cancel address") {
  auto p =
      parse_member_info("listen=0.0.0.0:6432 admin=127.0.0.1:9090 cancel=10.1.2.3:6432 peer=7");
  REQUIRE(p);
  CHECK(p->peer == 7);
  CHECK(p->address == "10.1.2.3:6432");
  auto* v4 = reinterpret_cast<const sockaddr_in*>(&p->sa);
  CHECK(v4->sin_family == AF_INET);
  CHECK(ntohs(v4->sin_port) == 6432);
  CHECK(p->sa_len == sizeof(sockaddr_in));
}

TEST_CASE("IPv6 cancel addresses") {
  auto p = parse_member_info("cancel=[::1]:5000 peer=3");
  REQUIRE(p);
  auto* v6 = reinterpret_cast<const sockaddr_in6*>(&p->sa);
  CHECK(v6->sin6_family == AF_INET6);
  CHECK(ntohs(v6->sin6_port) == 5000);
}

TEST_CASE("records that cannot be forwarded to") {
  CHECK_FALSE(parse_member_info("listen=1.2.3.4:5 admin=1.2.3.4:6"));  // an older instance
  CHECK_FALSE(parse_member_info("cancel=1.2.3.4:5 peer=0"));           // no number free
  CHECK_FALSE(parse_member_info("cancel=db.example:5 peer=2"));        // not numeric
  CHECK_FALSE(parse_member_info("cancel=1.2.3.4 peer=2"));             // no port
  CHECK_FALSE(parse_member_info("cancel=1.2.3.4:70000 peer=2"));
  CHECK_FALSE(parse_member_info("peer=2"));
  CHECK_FALSE(parse_member_info("cancel=1.2.3.4:5 peer=x"));
}

TEST_CASE("this instance's address: a wildcard host becomes this host's name, resolved") {
  auto a = resolve_cancel_address({"127.0.0.1", 6432});
  REQUIRE(a);
  CHECK(*a == "127.0.0.1:6432");
  auto w = resolve_cancel_address({"0.0.0.0", 6432});
  if (!w) {  // a host whose own name does not resolve (some containers)
    MESSAGE("host name does not resolve: " << w.error().message);
    return;
  }
  PeerAddress p;
  CHECK(parse_numeric_address(*w, p));
  CHECK(w->ends_with(":6432"));
}
