// Helpers for the kernel data path tests (bypass_test.cpp, splice*_test.cpp): loopback TCP
// pairs, exact reads with timeouts, unique pin instances, and the SKIP rule (a test that needs a
// kernel feature this machine lacks is skipped with the reason printed once, never passed).
#pragma once

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "bpf/feature_probe.h"
#include "common/unique_fd.h"

namespace helios::bpf::test {

// "" when the feature set is there, else the reason (printed once per reason).
inline std::string skip_reason(const Status& need, const char* what) {
  if (need.ok()) return "";
  static std::vector<std::string> printed;
  std::string r = std::string(what) + ": " + need.error().message;
  bool seen = false;
  for (const auto& p : printed) seen = seen || p == r;
  if (!seen) {
    std::fprintf(stderr, "SKIP: %s\n", r.c_str());
    printed.push_back(r);
  }
  return r;
}
inline bool skip_bypass_tests() {
  static const bool skip =
      !skip_reason(require_bypass(probe_kernel_features()), "same-host bypass tests").empty();
  return skip;
}
inline bool skip_splice_tests() {
  static const bool skip =
      !skip_reason(require_splice(probe_kernel_features()), "splice tests").empty();
  return skip;
}

inline std::string unique_instance(const char* what) {
  static std::atomic<int> n{0};
  return std::string("test-") + what + "-" + std::to_string(getpid()) + "-" +
         std::to_string(n.fetch_add(1));
}

struct Listener {
  UniqueFd fd;
  uint16_t port = 0;
};

// A listening TCP socket on 127.0.0.1 (or ::1) with a kernel-chosen port.
inline Listener listen_loopback(bool v6 = false) {
  Listener l;
  l.fd.reset(socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(l.fd.valid());
  int one = 1;
  setsockopt(l.fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage ss{};
  socklen_t len;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*a);
  }
  REQUIRE(bind(l.fd.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0);
  REQUIRE(listen(l.fd.get(), 128) == 0);
  REQUIRE(getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  l.port = v6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
              : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return l;
}

struct TcpPair {
  UniqueFd client;  // connect()ed
  UniqueFd server;  // accept()ed
};

inline TcpPair connect_pair(const Listener& l, bool v6 = false) {
  TcpPair p;
  p.client.reset(socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(p.client.valid());
  sockaddr_storage ss{};
  socklen_t len;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    a->sin6_port = htons(l.port);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons(l.port);
    len = sizeof(*a);
  }
  REQUIRE(connect(p.client.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0);
  p.server.reset(accept4(l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(p.server.valid());
  int one = 1;
  setsockopt(p.client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(p.server.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return p;
}

inline bool send_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pfd{fd, POLLOUT, 0};
      poll(&pfd, 1, 1000);
      continue;
    }
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}
inline bool send_all(int fd, const std::string& s) {
  return send_all(fd, s.data(), s.size());
}

// Reads exactly n bytes or fails after timeout_ms without progress. Returns what was read.
inline std::string recv_exact(int fd, size_t n, int timeout_ms = 5000) {
  std::string out;
  out.resize(n);
  size_t got = 0;
  while (got < n) {
    pollfd pfd{fd, POLLIN, 0};
    int pr = poll(&pfd, 1, timeout_ms);
    if (pr <= 0) break;
    ssize_t r = recv(fd, out.data() + got, n - got, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r <= 0) break;
    got += size_t(r);
  }
  out.resize(got);
  return out;
}

// Bytes readable right now without blocking (drains them).
inline std::string recv_available(int fd, int wait_ms = 50) {
  std::string out;
  char buf[65536];
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, wait_ms) <= 0) break;
    ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (r <= 0) break;
    out.append(buf, size_t(r));
  }
  return out;
}

inline int inq(int fd) {
  int n = -1;
  if (ioctl(fd, FIONREAD, &n) != 0) return -1;
  return n;
}

// A helper thread joined when it goes out of scope. `unblock` runs first (shut the socket the
// thread may be stuck on), so a failed REQUIRE ends the test case instead of the process.
class JoinedThread {
 public:
  JoinedThread(std::function<void()> body, std::function<void()> unblock)
      : unblock_(std::move(unblock)), t_(std::move(body)) {}
  JoinedThread(const JoinedThread&) = delete;
  JoinedThread& operator=(const JoinedThread&) = delete;
  ~JoinedThread() {
    if (!t_.joinable()) return;
    unblock_();
    t_.join();
  }
  void join() { t_.join(); }

 private:
  std::function<void()> unblock_;
  std::thread t_;
};

// Polls `cond` every millisecond up to timeout_ms.
inline bool eventually(const std::function<bool()>& cond, int timeout_ms = 2000) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cond();
}

// PostgreSQL v3 messages as bytes (type, big-endian length, body).
namespace pgm {
inline std::string msg(char type, const std::string& body) {
  std::string out(1, type);
  uint32_t len = htonl(uint32_t(body.size() + 4));
  out.append(reinterpret_cast<const char*>(&len), 4);
  return out + body;
}
inline std::string cstr(const std::string& s) {
  return s + std::string(1, '\0');
}
inline std::string query(const std::string& sql) {
  return msg('Q', cstr(sql));
}
inline std::string parse(const std::string& name, const std::string& sql) {
  return msg('P', cstr(name) + cstr(sql) + std::string(2, '\0'));
}
inline std::string bind() {
  return msg('B', std::string(2, '\0') + std::string(6, '\0'));
}
inline std::string execute() {
  return msg('E', cstr("") + std::string(4, '\0'));
}
inline std::string close_stmt(const std::string& name) {
  return msg('C', "S" + cstr(name));
}
inline std::string sync() {
  return msg('S', "");
}
inline std::string terminate() {
  return msg('X', "");
}
inline std::string ready(char status) {
  return msg('Z', std::string(1, status));
}
inline std::string data_row(size_t body) {
  return msg('D', std::string(body, 'x'));
}
inline std::string command_complete(const std::string& tag) {
  return msg('C', cstr(tag));
}
inline std::string parse_complete() {
  return msg('1', "");
}
inline std::string bind_complete() {
  return msg('2', "");
}
inline std::string parameter_status(const std::string& k, const std::string& v) {
  return msg('S', cstr(k) + cstr(v));
}
// A whole response to one simple Query: a row of `row` bytes, CommandComplete, ReadyForQuery.
inline std::string response(size_t row, char status = 'I') {
  return data_row(row) + command_complete("SELECT 1") + ready(status);
}
}  // namespace pgm

}  // namespace helios::bpf::test
