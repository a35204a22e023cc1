// The process id of the proxy's BackendKeyData (proxy/cancel_key.h): worker and slot round-trip
// in both layouts, the peer number only with [fleet], the forwarded mark never collides with a
// key a client gets.
#include <doctest/doctest.h>

#include <initializer_list>

#include "proxy/cancel_key.h"

using helios::proxy::CancelKeyLayout;

TEST_CASE("without [fleet] the layout is the one clients always had") {
  CancelKeyLayout k(false);
  CHECK(k.max_slots() == 1u << 24);
  int32_t pid = k.encode(0, 5, 123456);
  CHECK(pid == int32_t((1u << 30) | (5u << 24) | 123456));
  auto d = k.decode(pid);
  CHECK(d.ours);
  CHECK_FALSE(d.forwarded);
  CHECK(d.worker == 5);
  CHECK(d.slot == 123456);
  CHECK(d.peer == 0);
}

TEST_CASE("with [fleet] the peer number rides in bits 29-22") {
  CancelKeyLayout k(true);
  CHECK(k.max_slots() == 65536);
  for (uint32_t peer : {1u, 7u, 254u, 255u})
    for (uint32_t worker : {0u, 1u, 63u})
      for (uint32_t slot : {0u, 1u, 65535u}) {
        int32_t pid = k.encode(peer, worker, slot);
        CHECK(pid > 0);  // clients see a positive process id
        auto d = k.decode(pid);
        CHECK(d.ours);
        CHECK_FALSE(d.forwarded);
        CHECK(d.peer == peer);
        CHECK(d.worker == worker);
        CHECK(d.slot == slot);
      }
}

TEST_CASE("a forwarded request keeps its routing and is marked") {
  CancelKeyLayout k(true);
  int32_t pid = k.encode(9, 2, 300);
  int32_t fwd = CancelKeyLayout::mark_forwarded(pid);
  CHECK(fwd < 0);
  auto d = k.decode(fwd);
  CHECK(d.ours);
  CHECK(d.forwarded);
  CHECK(d.peer == 9);
  CHECK(d.worker == 2);
  CHECK(d.slot == 300);
}

TEST_CASE("a process id the proxy did not make is not ours") {
  CancelKeyLayout k(true);
  CHECK_FALSE(k.decode(12345).ours);  // a PostgreSQL backend's pid
  CHECK_FALSE(k.decode(0).ours);
}
