// A lease in a box: an "application" and a "PostgreSQL" end played by the test, the proxy's two
// sockets in a SpliceEngine, and the bookkeeping user space must keep (bytes consumed from each
// proxy socket) so leases can be spliced again and again on the same connections.
//
//   app  <-TCP->  proxy_c  ==kernel==  proxy_b  <-TCP->  pg
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "bpf/sockmap_splice.h"
#include "splice_harness.h"

namespace helios::bpf::test {

struct SpliceRig {
  SpliceEngine eng;
  Listener l;
  TcpPair cp;  // cp.client = app, cp.server = proxy_c
  TcpPair bp;  // bp.client = proxy_b, bp.server = pg
  SpliceSocket c, b;
  Consumed consumed;
  uint32_t seq = 0;
  uint32_t tenant = 7;

  explicit SpliceRig(uint16_t workers = 1) {
    SpliceOptions o;
    o.instance = unique_instance("splice");
    o.workers = workers;
    auto e = SpliceEngine::load(o);
    REQUIRE_MESSAGE(e.ok(), (e.ok() ? "" : e.error().message));
    eng = std::move(*e);
    l = listen_loopback();
    cp = connect_pair(l);
    bp = connect_pair(l);
    auto cs = eng.add(proxy_c(), SPLICE_ROLE_CLIENT);
    REQUIRE_MESSAGE(cs.ok(), (cs.ok() ? "" : cs.error().message));
    c = *cs;
    auto bs = eng.add(proxy_b(), SPLICE_ROLE_BACKEND);
    REQUIRE_MESSAGE(bs.ok(), (bs.ok() ? "" : bs.error().message));
    b = *bs;
    REQUIRE(eng.zero_tenant(tenant).ok());
  }

  int app() const { return cp.client.get(); }
  int proxy_c() const { return cp.server.get(); }
  int proxy_b() const { return bp.client.get(); }
  int pg() const { return bp.server.get(); }

  // Starts a lease as a worker would after sending the client's first request itself.
  void splice(splice_mode mode, uint32_t outstanding, uint32_t flags = 0, bool unsynced = false) {
    LeaseInfo li;
    li.seq = ++seq;
    li.tenant_id = tenant;
    li.mode = mode;
    li.flags = flags;
    li.outstanding = outstanding;
    li.unsynced = unsynced;
    auto s = eng.splice(c.cookie, b.cookie, li, consumed);
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
  }
  LeaseSnapshot lease() const {
    auto r = eng.read_lease(c.cookie, seq);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
    return *r;
  }
  splice_sock_state state(uint64_t cookie) const {
    auto s = eng.socket_state(cookie);
    REQUIRE(s.ok());
    return *s;
  }
  // Waits until the verdict of `cookie` has seen `total` bytes in all.
  bool seen(uint64_t cookie, uint64_t total, int timeout_ms = 3000) const {
    return eventually([&] { return state(cookie).rx_bytes >= total; }, timeout_ms);
  }
  // User space reads what the kernel passed up to a proxy socket (counted as consumed).
  std::string read_c(size_t n) {
    std::string s = recv_exact(proxy_c(), n);
    consumed.client += s.size();
    return s;
  }
  std::string read_b(size_t n) {
    std::string s = recv_exact(proxy_b(), n);
    consumed.backend += s.size();
    return s;
  }
  std::vector<splice_event> events() { return eng.event_ring(0).drain(); }
  void release() { REQUIRE(eng.release(c.cookie, b.cookie).ok()); }
  splice_tenant_counters counters() const {
    auto t = eng.tenant_counters(tenant);
    REQUIRE(t.ok());
    return *t;
  }
};

}  // namespace helios::bpf::test
