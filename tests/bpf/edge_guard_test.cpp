// EdgeGuard end to end on a veth pair in a private network namespace: attach (native and skb),
// pins, open_pinned + update, detach leaves no program and no pin; missing privileges give a
// missing-feature error (the proxy's fallback signal).
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "bpf/bpf_error.h"
#include "bpf/xdp_guard.h"
#include "bpf/vip_lookup.h"
#include "bpf/xdp_attach.h"
#include "common/unique_fd.h"
#include "guard_fixture.h"
#include "netns_thread.h"

using namespace helios;
using namespace helios::bpf;
using namespace helios::bpf::test;

namespace {

bool exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

std::string make_veth() {
  if (std::system("ip link add eg0 type veth peer name eg1 && ip link set eg0 up && "
                  "ip link set eg1 up") != 0)
    return "SKIP: cannot create a veth pair";
  return "";
}

EdgeSpec spec_for(const std::string& instance) {
  EdgeSpec s = basic_spec();
  s.instance = instance;
  s.interface = "eg0";
  return s;
}

}  // namespace

TEST_SUITE("edge_guard" * doctest::skip(skip_guard_tests())) {
  TEST_CASE("attach, inspect through the pins, update, detach on destruction") {
    std::string instance = "edge-test-" + std::to_string(getpid());
    std::string dir = std::string(HELIOS_PIN_ROOT) + "/" + instance;
    for (bool skb : {false, true}) {
      CAPTURE(skb);
      std::string err = in_new_netns([&]() -> std::string {
        if (auto e = make_veth(); !e.empty()) return e;
        auto ifindex = interface_index("eg0");
        if (!ifindex) return ifindex.error().message;
        EdgeSpec spec = spec_for(instance);
        spec.skb_mode = skb;
        {
          auto g = EdgeGuard::attach(spec);
          if (!g) return "attach: " + g.error().message;
          edge_attach_mode want = skb ? EDGE_ATTACH_SKB_SINGLE : EDGE_ATTACH_NATIVE_SINGLE;
          // This kernel refuses libxdp's dispatcher; a kernel that accepts it reports *_MULTI.
          if (g->mode() != want &&
              g->mode() != (skb ? EDGE_ATTACH_SKB_MULTI : EDGE_ATTACH_NATIVE_MULTI))
            return "mode " + g->mode_name();
          for (const char* m :
               {HELIOS_MAP_TENANT_COUNTERS, HELIOS_MAP_SYN_BUCKETS, HELIOS_MAP_TENANT_CIDRS,
                HELIOS_MAP_GLOBAL_BUCKET, HELIOS_PIN_XDP_PROG})
            if (!exists(dir + "/" + m)) return std::string("missing pin ") + m;
          auto id = attached_prog_id(*ifindex);
          if (!id || *id != g->prog_id()) return "attached program is not ours";

          auto second = EdgeGuard::attach(spec);
          if (second) return "second attach of the same instance succeeded";

          auto p = EdgeGuard::open_pinned(instance);
          if (!p) return "open_pinned: " + p.error().message;
          if (p->mode() != g->mode() || p->prog_id() != g->prog_id()) return "pinned view differs";
          spec.tenants.push_back({"gamma", {"10.3.0.0/16"}, 5, 5});
          if (auto s = p->update(spec); !s) return "update: " + s.error().message;
          auto c = g->counters();
          if (!c) return c.error().message;
          if (c->size() != 4) return "counters for " + std::to_string(c->size()) + " tenants";
          auto cfg = p->config();
          if (!cfg || cfg->ifindex != uint32_t(*ifindex)) return "ifindex not recorded";
          // p goes away first: it does not own the attachment.
        }
        auto id = attached_prog_id(*ifindex);
        if (!id || *id != 0) return "program left on the interface";
        if (exists(dir)) return "pins left behind in " + dir;
        return "";
      });
      if (err.rfind("SKIP:", 0) == 0) {
        MESSAGE(err);
        continue;
      }
      CHECK_MESSAGE(err.empty(), err);
    }
  }

  TEST_CASE("released guard stays until EdgeGuard::detach removes program and pins") {
    std::string instance = "edge-rel-" + std::to_string(getpid());
    std::string dir = std::string(HELIOS_PIN_ROOT) + "/" + instance;
    std::string err = in_new_netns([&]() -> std::string {
      if (auto e = make_veth(); !e.empty()) return e;
      auto ifindex = interface_index("eg0");
      {
        auto g = EdgeGuard::attach(spec_for(instance));
        if (!g) return "attach: " + g.error().message;
        g->release();
      }
      auto id = attached_prog_id(*ifindex);
      if (!id || *id == 0) return "released guard was detached";
      if (!exists(dir + "/" + HELIOS_MAP_TENANT_COUNTERS)) return "released guard lost its pins";
      auto wrong = EdgeGuard::detach("eg1", instance);
      if (wrong) return "detach from the wrong interface succeeded";
      if (auto s = EdgeGuard::detach("eg0", instance); !s) return "detach: " + s.error().message;
      id = attached_prog_id(*ifindex);
      if (!id || *id != 0) return "program left on the interface";
      if (exists(dir)) return "pins left behind";
      if (auto s = EdgeGuard::detach("eg0", instance); !s)
        return "second detach: " + s.error().message;
      return "";
    });
    if (err.rfind("SKIP:", 0) == 0) {
      MESSAGE(err);
      return;
    }
    CHECK_MESSAGE(err.empty(), err);
  }

  TEST_CASE("without CAP_BPF/CAP_NET_ADMIN/CAP_SYS_ADMIN attach fails as a missing feature") {
    std::string msg;
    bool missing = false;
    std::thread t([&] {
      // Capabilities are per thread: drop the effective set of this thread only.
      __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
      __user_cap_data_struct data[2]{};
      if (syscall(SYS_capget, &hdr, data) != 0) return;
      for (int cap : {CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_BPF, CAP_PERFMON})
        data[cap / 32].effective &= ~(1u << (cap % 32));
      if (syscall(SYS_capset, &hdr, data) != 0) return;
      EdgeSpec s = spec_for("edge-nocap");
      s.interface = "lo";
      auto g = EdgeGuard::attach(s);
      if (g) return;
      missing = is_missing_feature(g.error());
      msg = g.error().message;
    });
    t.join();
    CHECK_MESSAGE(missing, msg);
    CHECK(msg.find("missing privilege") != std::string::npos);
  }

  TEST_CASE("guard and VIP steering of one instance share the pin directory") {
    std::string instance = "edge-share-" + std::to_string(getpid());
    std::string dir = std::string(HELIOS_PIN_ROOT) + "/" + instance;
    std::string err = in_new_netns([&]() -> std::string {
      if (auto e = make_veth(); !e.empty()) return e;
      UniqueFd lfd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (bind(lfd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
          listen(lfd.get(), 8) != 0)
        return "listener";
      {
        auto vip = VipSteering::attach("10.9.9.9", 5432, lfd.get(), instance);
        if (!vip) return "vip: " + vip.error().message;
        {
          auto g = EdgeGuard::attach(spec_for(instance));
          if (!g) return "attach next to the VIP: " + g.error().message;
          if (!exists(dir + "/" + HELIOS_MAP_VIP_STATS)) return "vip_stats pin missing";
        }
        if (!exists(dir + "/" + HELIOS_MAP_VIP_STATS)) return "guard teardown removed vip_stats";
        if (exists(dir + "/" + HELIOS_MAP_TENANT_COUNTERS)) return "guard pins left behind";
      }
      if (exists(dir)) return "pin directory left behind";
      return "";
    });
    if (err.rfind("SKIP:", 0) == 0) {
      MESSAGE(err);
      return;
    }
    CHECK_MESSAGE(err.empty(), err);
  }

}  // TEST_SUITE
