// XDP edge guard under BPF_PROG_TEST_RUN with crafted frames: admission, counters, safe
// verdicts, hot rate updates. See guard_fixture.h for how skips are reported.
#include <doctest/doctest.h>

#include <unistd.h>

#include "common/clock.h"
#include "guard_fixture.h"

using namespace helios::bpf;
using namespace helios::bpf::test;

TEST_SUITE("xdp_guard" * doctest::skip(skip_guard_tests())) {
  TEST_CASE("SYN to the VIP within budget passes, over budget is dropped and counted") {
    GuardFixture g;
    g.apply(basic_spec());
    TcpPacket syn;  // 10.1.0.5 -> 10.9.9.9:5432, tenant alpha (burst 3)
    for (int i = 0; i < 3; i++) CHECK(g.verdict(syn) == kPass);
    CHECK(g.verdict(syn) == kDrop);
    CHECK(g.verdict(syn) == kDrop);
    auto c = g.counters_of("alpha");
    CHECK(c.syn_seen == 5);
    CHECK(c.syn_passed == 3);
    CHECK(c.syn_dropped == 2);
    CHECK(c.syn_dropped_global == 0);
    CHECK(c.packets == 5);
    CHECK(g.stats().syn_dropped == 2);
  }

  TEST_CASE("one tenant over budget does not touch another tenant") {
    GuardFixture g;
    g.apply(basic_spec());
    TcpPacket a;
    for (int i = 0; i < 10; i++) g.verdict(a);
    TcpPacket b;
    b.src = "10.2.3.4";
    CHECK(g.verdict(b) == kPass);
    CHECK(g.verdict(b) == kPass);
    CHECK(g.verdict(b) == kDrop);  // beta's own burst is 2
    CHECK(g.counters_of("beta").syn_passed == 2);
    CHECK(g.counters_of("alpha").syn_dropped == 7);
  }

  TEST_CASE("non-SYN segments to the VIP pass even with an empty bucket") {
    GuardFixture g;
    g.apply(basic_spec());
    TcpPacket syn;
    for (int i = 0; i < 4; i++) g.verdict(syn);
    TcpPacket ack = syn;
    ack.flags = 0x10;
    CHECK(g.verdict(ack) == kPass);
    TcpPacket synack = syn;
    synack.flags = 0x12;
    CHECK(g.verdict(synack) == kPass);
    auto c = g.counters_of("alpha");
    CHECK(c.packets == 6);
    CHECK(c.syn_seen == 4);
  }

  TEST_CASE("traffic that is not TCP to the VIP passes with its bytes unchanged") {
    GuardFixture g;
    g.apply(basic_spec());
    TcpPacket other_port;
    other_port.dport = 5433;
    TcpPacket other_addr;
    other_addr.dst = "10.9.9.8";
    TcpPacket v6_other;
    v6_other.src = "fd00:1::5";
    v6_other.dst = "fd00:9::8";
    for (const auto& p : {other_port, other_addr, v6_other}) {
      auto in = p.build();
      for (int i = 0; i < 5; i++) {  // SYNs far over alpha's budget: still not our business
        auto r = g.run(in);
        CHECK(r.verdict == kPass);
        CHECK(r.out == in);
      }
    }
    std::vector<uint8_t> arp(60, 0);
    arp[12] = 0x08;
    arp[13] = 0x06;
    auto r = g.run(arp);
    CHECK(r.verdict == kPass);
    CHECK(r.out == arp);
    CHECK(g.stats().non_vip == 16);
    CHECK(g.stats().vip_packets == 0);
    CHECK(g.counters_of("alpha").packets == 0);
  }

  TEST_CASE("IPv6: VIP match, tenant by IPv6 prefix, admission") {
    GuardFixture g;
    g.apply(basic_spec());
    TcpPacket p;
    p.src = "fd00:1::77";
    p.dst = "fd00:9::9";
    for (int i = 0; i < 3; i++) CHECK(g.verdict(p) == kPass);
    CHECK(g.verdict(p) == kDrop);
    auto c = g.counters_of("alpha");  // alpha owns 10.1/16 and fd00:1::/64: one bucket
    CHECK(c.syn_passed == 3);
    CHECK(c.syn_dropped == 1);
    SUBCASE("walked extension headers still match") {
      TcpPacket e = p;
      e.src = "fd00:1::78";
      e.ext_headers = {0, 60, 43, 51};  // hop-by-hop, dest opts, routing, AH
      e.flags = 0x10;
      CHECK(g.verdict(e) == kPass);
      CHECK(g.counters_of("alpha").packets == 5);
      CHECK(g.stats().ipv6_ext_unwalked == 0);
    }
    SUBCASE("ESP and over-long chains are passed unwalked") {
      TcpPacket esp = p;
      esp.ext_headers = {50};
      CHECK(g.verdict(esp) == kPass);
      TcpPacket chain = p;
      chain.ext_headers = {0, 60, 60, 60, 60, 60, 60};
      CHECK(g.verdict(chain) == kPass);
      CHECK(g.stats().ipv6_ext_unwalked == 2);
      CHECK(g.counters_of("alpha").packets == 4);
    }
  }

  TEST_CASE("fragments get safe verdicts") {
    GuardFixture g;
    EdgeSpec spec = basic_spec();
    g.apply(spec);
    TcpPacket first;  // first fragment: MF set, offset 0
    first.frag_off = 0x2000;
    TcpPacket later;
    later.frag_off = 0x0010;
    TcpPacket v6frag;
    v6frag.src = "fd00:1::5";
    v6frag.dst = "fd00:9::9";
    v6frag.ext_headers = {44};
    for (int i = 0; i < 5; i++) {
      CHECK(g.verdict(first) == kPass);
      CHECK(g.verdict(later) == kPass);
      CHECK(g.verdict(v6frag) == kPass);
    }
    CHECK(g.stats().fragments == 15);
    CHECK(g.counters_of("alpha").syn_seen == 0);

    SUBCASE("drop_fragments drops only fragments addressed to a VIP address") {
      spec.drop_fragments = true;
      g.apply(spec);
      CHECK(g.verdict(first) == kDrop);
      CHECK(g.verdict(v6frag) == kDrop);
      TcpPacket elsewhere = later;
      elsewhere.dst = "10.9.9.1";
      CHECK(g.verdict(elsewhere) == kPass);
      CHECK(g.stats().fragments_dropped == 2);
    }
  }

  TEST_CASE("short, truncated and malformed headers pass untouched") {
    GuardFixture g;
    g.apply(basic_spec());
    auto full = TcpPacket{}.build();  // 14 + 20 + 20 bytes
    for (size_t len : {size_t(14), size_t(20), size_t(33), size_t(34), size_t(40), size_t(53)}) {
      std::vector<uint8_t> cut(full.begin(), full.begin() + long(len));
      auto r = g.run(cut);
      CHECK_MESSAGE(r.verdict == kPass, "length " << len);
      CHECK(r.out == cut);
    }
    CHECK(g.stats().short_headers == 6);

    TcpPacket bad_ihl;
    bad_ihl.ihl = 4;
    CHECK(g.verdict(bad_ihl) == kPass);
    TcpPacket bad_doff;
    bad_doff.doff = 3;
    CHECK(g.verdict(bad_doff) == kPass);
    TcpPacket bad_version;
    bad_version.ip_version = 6;  // IPv4 ethertype, version 6
    CHECK(g.verdict(bad_version) == kPass);
    CHECK(g.stats().malformed == 3);

    TcpPacket opts;  // TCP options claimed (doff 15 = 60 bytes) but the frame stops at 20
    opts.doff = 15;
    auto f = opts.build();
    f.resize(14 + 20 + 20);
    CHECK(g.run(f).verdict == kPass);
    CHECK(g.stats().short_headers == 7);

    TcpPacket v6;
    v6.src = "fd00:1::5";
    v6.dst = "fd00:9::9";
    auto f6 = v6.build();
    f6.resize(14 + 30);
    CHECK(g.run(f6).verdict == kPass);
    CHECK(g.stats().short_headers == 8);
    CHECK(g.counters_of("alpha").packets == 0);
  }

  TEST_CASE("IPv4 options and VLAN tags are walked") {
    GuardFixture g;
    g.apply(basic_spec());
    TcpPacket o;
    o.ihl = 8;  // 12 bytes of options
    o.flags = 0x10;
    CHECK(g.verdict(o) == kPass);
    TcpPacket v;
    v.vlan_tags = 2;
    v.flags = 0x10;
    CHECK(g.verdict(v) == kPass);
    CHECK(g.counters_of("alpha").packets == 2);
  }

  TEST_CASE("packet and byte counters are exact") {
    GuardFixture g;
    EdgeSpec spec = basic_spec();
    spec.tenants[0].syn_rate = 0;  // no limit: count only
    g.apply(spec);
    uint64_t bytes = 0;
    for (size_t payload : {0, 1, 100, 1000, 1400}) {
      TcpPacket p;
      p.flags = 0x18;  // PSH+ACK
      p.payload = payload;
      auto f = p.build();
      g.run(f);
      bytes += f.size();
    }
    TcpPacket unmatched;
    unmatched.src = "192.0.2.1";
    g.verdict(unmatched);
    auto c = g.counters_of("alpha");
    CHECK(c.packets == 5);
    CHECK(c.bytes == bytes);
    CHECK(c.syn_seen == 0);
    auto u = g.counters_of(kUnmatchedTenant);
    CHECK(u.packets == 1);
    CHECK(u.syn_passed == 1);
    SUBCASE("repeat runs count every run") {
      TcpPacket p;
      p.flags = 0x10;
      g.run(p.build(), 1000);
      CHECK(g.counters_of("alpha").packets == 1005);
    }
  }

  TEST_CASE("global bucket caps all sources after tenant buckets") {
    GuardFixture g;
    EdgeSpec spec = basic_spec();
    spec.tenants[0].syn_rate = 0;  // alpha: no tenant limit
    spec.global_syn_rate = 0.001;
    spec.global_syn_burst = 4;
    g.apply(spec);
    TcpPacket a;
    for (int i = 0; i < 4; i++) CHECK(g.verdict(a) == kPass);
    CHECK(g.verdict(a) == kDrop);
    TcpPacket u;
    u.src = "192.0.2.9";
    CHECK(g.verdict(u) == kDrop);
    CHECK(g.counters_of("alpha").syn_dropped_global == 1);
    CHECK(g.counters_of(kUnmatchedTenant).syn_dropped_global == 1);
  }

  TEST_CASE("rates and CIDRs change on the fly without reloading the program") {
    GuardFixture g;
    EdgeSpec spec = basic_spec();
    g.apply(spec);
    bpf_prog_info before{};
    uint32_t len = sizeof(before);
    REQUIRE(bpf_obj_get_info_by_fd(g.prog_fd(), &before, &len) == 0);

    TcpPacket syn;
    for (int i = 0; i < 3; i++) g.verdict(syn);
    CHECK(g.verdict(syn) == kDrop);

    spec.tenants[0].syn_rate = 1000000;  // one token per microsecond
    spec.tenants[0].syn_burst = 50;
    g.apply(spec);
    int passed = 0;
    for (int i = 0; i < 20; i++) passed += g.verdict(syn) == kPass;
    CHECK(passed == 20);

    spec.tenants[0].syn_rate = 0.001;
    spec.tenants[0].syn_burst = 1;  // the bucket shrinks to 1 at once
    g.apply(spec);
    g.verdict(syn);
    CHECK(g.verdict(syn) == kDrop);

    // Move 10.1.0.0/16 to beta: alpha's source now drains beta's fresh-ish bucket.
    spec.tenants[0].cidrs = {"fd00:1::/64"};
    spec.tenants[1].cidrs = {"10.2.0.0/16", "10.1.0.0/16"};
    g.apply(spec);
    CHECK(g.verdict(syn) == kPass);
    CHECK(g.verdict(syn) == kPass);
    CHECK(g.verdict(syn) == kDrop);
    CHECK(g.counters_of("beta").syn_passed == 2);

    bpf_prog_info after{};
    len = sizeof(after);
    REQUIRE(bpf_obj_get_info_by_fd(g.prog_fd(), &after, &len) == 0);
    CHECK(after.id == before.id);
  }

  TEST_CASE("buckets refill at the configured rate in real time") {
    GuardFixture g;
    EdgeSpec spec = basic_spec();
    spec.tenants[0].syn_rate = 1000;  // one SYN per millisecond
    spec.tenants[0].syn_burst = 1000;
    g.apply(spec);
    TcpPacket syn;
    int drained = 0;
    while (g.verdict(syn) == kPass) drained++;
    CHECK(drained >= 1000);  // the full burst (plus what trickled in meanwhile)
    helios::Nanos empty_at = helios::monotonic_now();
    usleep(100 * 1000);
    helios::Nanos first = helios::monotonic_now();
    int admitted = 0;
    for (int i = 0; i < 400; i++) admitted += g.verdict(syn) == kPass;
    helios::Nanos last = helios::monotonic_now();
    // Tokens earned between the bucket running dry and the last SYN, at 1 per ms.
    double lower = double(first - empty_at) / 1e6 - 1;
    double upper = double(last - empty_at) / 1e6 + 2;
    CAPTURE(admitted);
    CAPTURE(lower);
    CAPTURE(upper);
    CHECK(admitted >= lower);
    CHECK(admitted <= upper);
  }

  TEST_CASE("tenant slots: ids are stable, removed tenants are cleared, new tenants start fresh") {
    GuardFixture g;
    EdgeSpec spec = basic_spec();
    g.apply(spec);
    auto ids = g.maps().tenants();
    REQUIRE(ids.ok());
    REQUIRE(ids->size() == 2);
    TcpPacket syn;
    g.verdict(syn);
    spec.tenants.erase(spec.tenants.begin());  // remove alpha
    spec.tenants.push_back({"gamma", {"10.1.0.0/16"}, 0.001, 1});
    g.apply(spec);
    auto after = g.maps().tenants();
    REQUIRE(after.ok());
    REQUIRE(after->size() == 2);
    for (const auto& [id, name] : *after) CHECK(name != "alpha");
    CHECK(g.counters_of("gamma").packets == 0);
    CHECK(g.verdict(syn) == kPass);  // gamma's fresh bucket (burst 1)
    CHECK(g.verdict(syn) == kDrop);
    CHECK(g.counters_of("gamma").syn_dropped == 1);
    // beta kept its id
    uint32_t beta_before = 0, beta_after = 0;
    for (const auto& [id, name] : *ids)
      if (name == "beta") beta_before = id;
    for (const auto& [id, name] : *after)
      if (name == "beta") beta_after = id;
    CHECK(beta_before == beta_after);
  }

}  // TEST_SUITE
