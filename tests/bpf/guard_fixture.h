// Loads bpf/xdp_guard.bpf.c the way production does (Skeleton open -> load; EdgeMaps::apply for
// the config), without attaching, and runs crafted frames through it with BPF_PROG_TEST_RUN.
//
// Skipping: when this kernel or process cannot load the program or run BPF_PROG_TEST_RUN, the
// test cases are registered with doctest::skip(true) and the reason is printed once as
// "SKIP: <reason>"; doctest counts them as skipped, never passed (scripts/test reports skips).
#pragma once

#include <bpf/bpf.h>
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "bpf/edge_maps.h"
#include "bpf/feature_probe.h"
#include "bpf/skeleton.h"
#include "helios/xdp_guard.skel.h"
#include "packet_builder.h"

namespace helios::bpf::test {

struct RunResult {
  int verdict = -1;
  std::vector<uint8_t> out;
};

class GuardFixture {
 public:
  GuardFixture() {
    auto s = Skeleton<xdp_guard>::open();
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
    skel_ = std::move(*s);
    auto l = skel_.load();
    REQUIRE_MESSAGE(l.ok(), (l.ok() ? "" : l.error().message));
    auto m = EdgeMaps::of(*skel_.get());
    REQUIRE_MESSAGE(m.ok(), (m.ok() ? "" : m.error().message));
    maps_.emplace(std::move(*m));
  }

  void apply(const EdgeSpec& spec) {
    auto s = maps_->apply(spec);
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
  }

  RunResult run(const std::vector<uint8_t>& frame, int repeat = 1) {
    RunResult r;
    r.out.resize(frame.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.out.data(),
                .data_size_in = uint32_t(frame.size()), .data_size_out = uint32_t(r.out.size()),
                .repeat = repeat);
    int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.xdp_guard), &opts);
    REQUIRE_MESSAGE(err == 0, "BPF_PROG_TEST_RUN failed: " << err);
    r.verdict = int(opts.retval);
    r.out.resize(opts.data_size_out);
    return r;
  }
  int verdict(const TcpPacket& p) { return run(p.build()).verdict; }

  EdgeTenantCounters counters_of(const std::string& tenant) {
    auto all = maps_->counters();
    REQUIRE(all.ok());
    for (const auto& c : *all)
      if (c.tenant == tenant) return c;
    FAIL("no counters for tenant " << tenant);
    return {};
  }
  edge_guard_stats stats() {
    auto s = maps_->stats();
    REQUIRE(s.ok());
    return *s;
  }
  EdgeMaps& maps() { return *maps_; }
  xdp_guard* skel() { return skel_.get(); }
  int prog_fd() { return bpf_program__fd(skel_->progs.xdp_guard); }

 private:
  Skeleton<xdp_guard> skel_;
  std::optional<EdgeMaps> maps_;
};

// Evaluated once, at test registration: can this machine load the guard and test-run it?
inline bool skip_guard_tests() {
  static const bool skip = [] {
    auto feats = probe_kernel_features();
    std::string why;
    if (auto s = require_edge_guard(feats); !s) why = s.error().message;
    if (why.empty()) {
      auto sk = Skeleton<xdp_guard>::open();
      if (!sk)
        why = sk.error().message;
      else if (auto l = sk->load(); !l)
        why = l.error().message;
      else {
        std::vector<uint8_t> f(64, 0);
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f.data(), .data_size_in = uint32_t(f.size()));
        if (bpf_prog_test_run_opts(bpf_program__fd((*sk)->progs.xdp_guard), &o) != 0)
          why = "BPF_PROG_TEST_RUN refused for XDP";
      }
    }
    if (!why.empty()) std::fprintf(stderr, "SKIP: xdp_guard tests: %s\n", why.c_str());
    return !why.empty();
  }();
  return skip;
}

constexpr int kPass = 2;  // XDP_PASS
constexpr int kDrop = 1;  // XDP_DROP

inline EdgeSpec basic_spec() {
  EdgeSpec s;
  s.instance = "test";
  s.vip = "10.9.9.9:5432,[fd00:9::9]:5432";
  s.tenants = {
      {"alpha", {"10.1.0.0/16", "fd00:1::/64"}, 0.001, 3},  // 3 SYNs, then ~nothing
      {"beta", {"10.2.0.0/16"}, 0.001, 2},
  };
  return s;
}

}  // namespace helios::bpf::test
