// sk_lookup transparent VIP in a private network namespace: a listener on 127.0.0.1:<any>
// receives connections made to VIP:5432, getsockname() shows the VIP, and everything (route,
// program, pin) is gone after destruction.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include "bpf/feature_probe.h"
#include "bpf/vip_lookup.h"
#include "common/unique_fd.h"
#include "netns_thread.h"

using namespace helios;
using namespace helios::bpf;
using namespace helios::bpf::test;

namespace {

bool skip_vip_tests() {
  static const bool skip = [] {
    auto s = require_vip_steering(probe_kernel_features());
    if (!s) std::fprintf(stderr, "SKIP: vip_steering tests: %s\n", s.error().message.c_str());
    return !s.ok();
  }();
  return skip;
}

int connect_v4(const char* addr, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, addr, &sa.sin_addr);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string sockname(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return "?";
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof(buf));
  return std::string(buf) + ":" + std::to_string(ntohs(sa.sin_port));
}

}  // namespace

TEST_CASE("VIP:5432 reaches a listener on 127.0.0.1 and getsockname shows the VIP" *
          doctest::skip(skip_vip_tests())) {
  std::string instance = "vip-test-" + std::to_string(getpid());
  std::string pin = "/sys/fs/bpf/helios/" + instance + "/vip_stats";
  std::string err = in_new_netns([&]() -> std::string {
    UniqueFd lfd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (bind(lfd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) return "bind";
    if (listen(lfd.get(), 16) != 0) return "listen";

    if (int fd = connect_v4("10.250.0.1", 5432); fd >= 0) {
      close(fd);
      return "VIP reachable before steering";
    }
    {
      auto vip = VipSteering::attach("10.250.0.1", 5432, lfd.get(), instance);
      if (!vip) return "attach: " + vip.error().message;
      if (!vip->created_route()) return "route was not created by us";
      struct stat st {};
      if (stat(pin.c_str(), &st) != 0) return "vip_stats not pinned at " + pin;
      for (int i = 0; i < 3; i++) {
        UniqueFd c(connect_v4("10.250.0.1", 5432));
        if (!c) {
          auto st = vip->stats();
          return std::string("connect to VIP: ") + std::strerror(errno) +
                 (st ? " (lookups " + std::to_string(st->lookups) + ", steered " +
                           std::to_string(st->steered) + ", no_listener " +
                           std::to_string(st->no_listener) + ", assign_failed " +
                           std::to_string(st->assign_failed) + ")"
                     : "");
        }
        UniqueFd a(accept(lfd.get(), nullptr, nullptr));
        if (!a) return "accept";
        if (sockname(a.get()) != "10.250.0.1:5432") return "getsockname: " + sockname(a.get());
        if (write(c.get(), "ping", 4) != 4) return "write";
        char buf[4];
        if (read(a.get(), buf, 4) != 4 || std::memcmp(buf, "ping", 4) != 0) return "read";
      }
      auto stats = vip->stats();
      if (!stats) return stats.error().message;
      if (stats->steered != 3) return "steered = " + std::to_string(stats->steered);
      if (int fd = connect_v4("10.250.0.1", 5433); fd >= 0) {
        close(fd);
        return "other port was steered";
      }
    }
    struct stat st {};
    if (stat(pin.c_str(), &st) == 0) return "vip_stats pin left behind";
    if (int fd = connect_v4("10.250.0.1", 5432); fd >= 0) {
      close(fd);
      return "VIP still reachable after destruction";
    }
    return "";
  });
  if (err.rfind("SKIP:", 0) == 0) {
    MESSAGE(err);
    return;
  }
  CHECK_MESSAGE(err.empty(), err);
}

TEST_CASE("VipSteering rejects bad input") {
  CHECK(!VipSteering::attach("not-an-ip", 5432, 0, "x").ok());
  CHECK(!VipSteering::attach("10.0.0.1", 0, 0, "x").ok());
  CHECK(!VipSteering::attach("10.0.0.1", 5432, 0, "bad/name").ok());
  UniqueFd notlistening(socket(AF_INET, SOCK_STREAM, 0));
  auto r = VipSteering::attach("10.0.0.1", 5432, notlistening.get(), "x");
  REQUIRE(!r.ok());
  CHECK(r.error().message.find("not a listening socket") != std::string::npos);
}

TEST_CASE("a SO_REUSEPORT group behind the VIP still shares the connections" *
          doctest::skip(skip_vip_tests())) {
  // The proxy runs one listener per worker in a reuseport group and hands one of them to
  // VipSteering: the kernel must keep balancing across the whole group.
  std::string err = in_new_netns([&]() -> std::string {
    UniqueFd l[2];
    uint16_t port = 0;
    for (auto& fd : l) {
      fd = UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      int one = 1;
      setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(port);
      inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
      if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) return "bind";
      if (listen(fd.get(), 64) != 0) return "listen";
      socklen_t len = sizeof(sa);
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len);
      port = ntohs(sa.sin_port);
    }
    auto vip =
        VipSteering::attach("10.250.0.2", 5432, l[0].get(), "vip-rp-" + std::to_string(getpid()));
    if (!vip) return "attach: " + vip.error().message;
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 32; i++) {
      UniqueFd c(connect_v4("10.250.0.2", 5432));
      if (!c) return "connect";
      clients.push_back(std::move(c));
    }
    int got[2] = {0, 0};
    for (int i = 0; i < 2; i++)
      while (true) {
        UniqueFd a(accept(l[i].get(), nullptr, nullptr));
        if (!a) break;
        got[i]++;
      }
    if (got[0] + got[1] != 32) return "accepted " + std::to_string(got[0] + got[1]) + " of 32";
    if (got[0] == 0 || got[1] == 0)
      return "one listener got everything: " + std::to_string(got[0]) + "/" +
             std::to_string(got[1]);
    return "";
  });
  if (err.rfind("SKIP:", 0) == 0) {
    MESSAGE(err);
    return;
  }
  CHECK_MESSAGE(err.empty(), err);
}
