// Bench helper for the kernel data path (built on the fly by bench/kernel/kernel_bench.py
// against a build directory's libhelios_core.a).
//
//   kernel_tool bypass --instance I --endpoint 127.0.0.1:6432=proxy --endpoint 127.0.0.1:5432=db
//       Attaches the same-host bypass (SameHostBypass, exactly as the proxy would), prints one
//       JSON line {"event":"attached",...}, holds it until stdin closes or SIGTERM, then prints
//       {"event":"detached","stats":{...}} and exits (RAII detach).
//
//   kernel_tool relay --path splice|user --size BYTES --count N [--pairs P]
//       A relay microbench without PostgreSQL: "app" and "db" threads exchange PostgreSQL
//       framed messages (the app sends a small Query, the db answers with a DataRow of SIZE
//       bytes + ReadyForQuery) through a relay whose two sockets are either spliced in the
//       kernel (SpliceEngine, session lease) or copied by a user-space relay thread
//       (recv/send, one thread per pair, 256 KiB buffer). Prints one JSON line with wall time,
//       messages, bytes and whole-machine busy CPU seconds from /proc/stat.
//
//   kernel_tool pgrelay --path splice|user --listen PORT --upstream HOST:PORT
//       A session-mode relay in front of a real PostgreSQL, one thread per client: startup and
//       auth are copied in user space; at the backend's first ReadyForQuery the pair is either
//       spliced in the kernel (session lease; SpliceEngine) or kept in a user-space copy loop.
//       Prints {"event":"listening"}, runs until stdin closes, then prints its counters.
//       --path skmsg: the sk_msg reply path (SkmsgReply, bpf/skmsg_reply.bpf.c; PostgreSQL must
//       run on this host): the relay forwards the client's requests itself and arms the
//       session's lease slot before each one; PostgreSQL's own sendmsg redirects the replies to
//       the client socket's egress until the ReadyForQuery 'I'. At the end it prints the
//       program's counters and, per session, whether the client socket got exactly the bytes the
//       program redirected plus the relay's writes (TCP_INFO of the client socket).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bpf/bpf_error.h"
#include "bpf/skmsg_reply.h"
#include "bpf/sockmap_splice.h"
#include "bpf/sockops_bypass.h"
#include "common/log.h"
#include "common/unique_fd.h"

using namespace helios;
using namespace helios::bpf;
using json = nlohmann::json;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop.store(true);
}

int cmd_bypass(const std::string& instance, const std::vector<std::string>& endpoints,
               const std::string& cgroup) {
  BypassSpec spec;
  spec.instance = instance;
  spec.cgroup = cgroup;
  for (const auto& e : endpoints) {
    auto eq = e.rfind('=');
    std::string addr = eq == std::string::npos ? e : e.substr(0, eq);
    std::string role = eq == std::string::npos ? "proxy" : e.substr(eq + 1);
    auto ep = parse_endpoint(addr);
    if (!ep) {
      std::cerr << ep.error().message << "\n";
      return 2;
    }
    spec.endpoints.push_back({*ep, role == "db" ? BYPASS_ROLE_DATABASE : BYPASS_ROLE_PROXY_LISTEN});
  }
  auto b = SameHostBypass::attach(spec);
  if (!b) {
    std::cout << json{{"event", "error"}, {"message", b.error().message}}.dump() << std::endl;
    return is_missing_feature(b.error()) ? 3 : 1;
  }
  std::cout << json{{"event", "attached"}, {"cgroup", b->cgroup()}, {"pins", b->pin_path()}}.dump()
            << std::endl;
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  while (!g_stop.load()) {
    pollfd pfd{0, POLLIN, 0};
    int r = poll(&pfd, 1, 200);
    if (r > 0) {
      char buf[64];
      if (read(0, buf, sizeof(buf)) <= 0) break;
    }
  }
  json out{{"event", "detached"}};
  if (auto s = b->stats(); s)
    out["stats"] = {{"established", s->established},
                    {"added", s->added},
                    {"not_local", s->not_local},
                    {"add_failed", s->add_failed},
                    {"msgs_redirected", s->msgs_redirected},
                    {"bytes_redirected", s->bytes_redirected},
                    {"msgs_passed", s->msgs_passed}};
  if (auto n = b->socket_count(); n) out["sockets"] = *n;
  std::cout << out.dump() << std::endl;
  return 0;
}

// ---- relay microbench -------------------------------------------------------------------------

double machine_busy_seconds() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  uint64_t v[8] = {};
  f >> cpu;
  for (auto& x : v) f >> x;
  double tick = double(sysconf(_SC_CLK_TCK));
  return double(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick;
}

struct Pair {
  UniqueFd a, b;
};

Pair tcp_pair(int listener, uint16_t port) {
  Pair p;
  p.a.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(port);
  if (connect(p.a.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) std::abort();
  p.b.reset(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  int one = 1;
  setsockopt(p.a.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(p.b.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return p;
}

bool write_all(int fd, const char* p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

bool read_n(int fd, char* buf, size_t cap, uint64_t n) {
  while (n) {
    ssize_t r = recv(fd, buf, n < cap ? size_t(n) : cap, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    n -= uint64_t(r);
  }
  return true;
}

std::string pg_msg(char type, size_t body) {
  std::string m(1, type);
  uint32_t len = htonl(uint32_t(body + 4));
  m.append(reinterpret_cast<const char*>(&len), 4);
  m.append(body, 'x');
  return m;
}

// A user-space relay for one pair of sockets: whatever arrives on one is written to the other.
void user_relay(int x, int y, std::atomic<bool>& done) {
  std::vector<char> buf(256 * 1024);
  pollfd fds[2] = {{x, POLLIN, 0}, {y, POLLIN, 0}};
  while (!done.load(std::memory_order_relaxed)) {
    if (poll(fds, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t r = recv(fds[i].fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (r <= 0) return;
      if (!write_all(fds[1 - i].fd, buf.data(), size_t(r))) return;
    }
  }
}

int cmd_relay(const std::string& path, uint64_t size, uint64_t count, int pairs, int sndbuf) {
  UniqueFd l(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  if (bind(l.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) || listen(l.get(), 64) ||
      getsockname(l.get(), reinterpret_cast<sockaddr*>(&sa), &len))
    return 1;
  uint16_t port = ntohs(sa.sin_port);

  SpliceEngine eng;
  if (path == "splice") {
    SpliceOptions o;
    o.instance = "bench-relay-" + std::to_string(getpid());
    o.pin = false;
    auto e = SpliceEngine::load(o);
    if (!e) {
      std::cout << json{{"error", e.error().message}}.dump() << std::endl;
      return is_missing_feature(e.error()) ? 3 : 1;
    }
    eng = std::move(*e);
  }
  // app <-> relay_c ... relay_b <-> db
  std::vector<Pair> cpairs, bpairs;
  for (int i = 0; i < pairs; ++i) {
    cpairs.push_back(tcp_pair(l.get(), port));
    bpairs.push_back(tcp_pair(l.get(), port));
    if (sndbuf > 0)
      for (int fd : {cpairs.back().b.get(), bpairs.back().a.get()})
        setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
  }
  std::atomic<bool> done{false};
  std::vector<std::thread> relays;
  for (int i = 0; i < pairs; ++i) {
    int rc = cpairs[i].b.get(), rb = bpairs[i].a.get();
    if (path == "splice") {
      auto c = eng.add(rc, SPLICE_ROLE_CLIENT);
      auto b = eng.add(rb, SPLICE_ROLE_BACKEND);
      if (!c || !b) return 1;
      LeaseInfo li;
      li.seq = 1;
      li.mode = SPLICE_MODE_SESSION;
      if (!eng.splice(c->cookie, b->cookie, li, {})) return 1;
    } else {
      relays.emplace_back(user_relay, rc, rb, std::ref(done));
    }
  }
  const std::string query = pg_msg('Q', 20);
  const std::string tail = pg_msg('C', 9) + pg_msg('Z', 1);
  std::string hdr(1, 'D');
  uint32_t blen = htonl(uint32_t(size + 4));
  hdr.append(reinterpret_cast<const char*>(&blen), 4);
  const uint64_t response = hdr.size() + size + tail.size();

  double cpu0 = machine_busy_seconds();
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  std::atomic<int> failures{0};
  for (int i = 0; i < pairs; ++i) {
    int app = cpairs[i].a.get(), db = bpairs[i].b.get();
    workers.emplace_back([&, app, db] {  // the database: answer every query
      std::vector<char> buf(256 * 1024), body(std::min<uint64_t>(size, 1 << 20), 'x');
      for (uint64_t n = 0; n < count; ++n) {
        if (!read_n(db, buf.data(), buf.size(), query.size())) return failures.fetch_add(1), void();
        bool ok = write_all(db, hdr.data(), hdr.size());
        for (uint64_t left = size; ok && left;) {
          size_t k = left < body.size() ? size_t(left) : body.size();
          ok = write_all(db, body.data(), k);
          left -= k;
        }
        if (!ok || !write_all(db, tail.data(), tail.size())) return failures.fetch_add(1), void();
      }
    });
    workers.emplace_back([&, app] {  // the application: query, read the whole answer
      std::vector<char> buf(256 * 1024);
      for (uint64_t n = 0; n < count; ++n) {
        if (!write_all(app, query.data(), query.size()) ||
            !read_n(app, buf.data(), buf.size(), response))
          return failures.fetch_add(1), void();
      }
    });
  }
  for (auto& t : workers) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double cpu = machine_busy_seconds() - cpu0;
  done.store(true);
  for (auto& t : relays) t.join();
  uint64_t msgs = count * uint64_t(pairs);
  json out{{"path", path},
           {"size", size},
           {"count", count},
           {"pairs", pairs},
           {"seconds", secs},
           {"round_trips_per_s", double(msgs) / secs},
           {"mb_per_s", double(msgs * response) / secs / 1e6},
           {"busy_cpu_s", cpu},
           {"cpu_us_per_round_trip", cpu * 1e6 / double(msgs)},
           {"failures", failures.load()}};
  if (path == "splice")
    if (auto s = eng.stats(); s)
      out["kernel"] = {{"forwarded_skbs", s->forwarded_skbs}, {"passed_skbs", s->passed_skbs}};
  std::cout << out.dump() << std::endl;
  return failures.load() ? 1 : 0;
}

// ---- session relay in front of PostgreSQL ------------------------------------------------------

struct RelayCounters {
  std::atomic<uint64_t> clients{0}, spliced{0}, user_bytes{0}, handbacks{0};
  // skmsg path
  std::atomic<uint64_t> routed{0}, not_in_map{0}, armed{0}, arm_skipped{0}, ended{0}, rfq{0},
      redirected_bytes{0}, client_bytes_written{0}, mismatch_sessions{0}, mismatch_bytes{0},
      lease_errors{0}, relay_to_client{0};
  std::atomic<uint32_t> next_slot{0};
  std::atomic<int> active{0};  // sessions whose counters are not added yet
};

// --path skmsg: one session after startup. Client -> server is copied here, and the lease slot
// is armed before each request goes out; server -> client arrives here only when the program
// did not redirect it (slot idle: after the 'I', or not armed).
void skmsg_session(int client, int server, SkmsgReply& sk, uint32_t slot, RelayCounters& rc) {
  std::vector<char> buf(256 * 1024);
  uint64_t user_to_client = 0;
  auto before = tcp_bytes_written(client);  // startup and auth, written by the relay
  const uint64_t written_before = before ? *before : 0;
  pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, 1000) < 0 && errno != EINTR) break;
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = recv(server, buf.data(), buf.size(), MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) break;
      if (r > 0) {
        rc.user_bytes.fetch_add(uint64_t(r), std::memory_order_relaxed);
        user_to_client += uint64_t(r);
        if (!write_all(client, buf.data(), size_t(r))) break;
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = recv(client, buf.data(), buf.size(), MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) break;
      if (r > 0) {
        // Arm only when no reply is waiting here: a reply that already took the TCP way must
        // reach the client before anything the program redirects.
        int pending = 0;
        if (!sk.armed(slot)) {
          if (ioctl(server, FIONREAD, &pending) == 0 && pending == 0) {
            sk.arm(slot);
            rc.armed.fetch_add(1, std::memory_order_relaxed);
          } else {
            rc.arm_skipped.fetch_add(1, std::memory_order_relaxed);
          }
        }
        rc.user_bytes.fetch_add(uint64_t(r), std::memory_order_relaxed);
        if (!write_all(server, buf.data(), size_t(r))) break;
      }
    }
  }
  skmsg_lease l = sk.lease(slot);
  rc.relay_to_client.fetch_add(user_to_client);
  rc.ended.fetch_add(l.ended);
  rc.rfq.fetch_add(l.rfq);
  rc.redirected_bytes.fetch_add(l.bytes);
  if (l.error) rc.lease_errors.fetch_add(1);
  // The client socket's TCP counters hold the relay's writes plus the redirects that took
  // effect: they must equal the relay's writes plus what the program counted as delivered
  // (a redirect that failed part-way is subtracted by the tracepoint and counted again when
  // PostgreSQL re-sends). Any difference is a byte lost or doubled.
  if (auto w = tcp_bytes_written(client); w) {
    uint64_t got = *w - written_before, want = user_to_client + l.bytes;
    rc.client_bytes_written.fetch_add(got);
    if (got != want) {
      rc.mismatch_sessions.fetch_add(1);
      rc.mismatch_bytes.fetch_add(got > want ? got - want : want - got);
    }
  }
  (void)sk.unroute(server, slot);
}

// Copies whatever arrives on either socket to the other until one side closes.
void copy_loop(int a, int b, RelayCounters& rc) {
  std::vector<char> buf(256 * 1024);
  pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, 1000) < 0 && errno != EINTR) return;
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = recv(fds[i].fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) return;
      rc.user_bytes.fetch_add(uint64_t(r), std::memory_order_relaxed);
      if (!write_all(fds[1 - i].fd, buf.data(), size_t(r))) return;
    }
  }
}

bool read_exact(int fd, char* p, size_t n) {
  while (n) {
    ssize_t r = recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
  }
  return true;
}

uint32_t be32(const char* p) {
  return (uint32_t(uint8_t(p[0])) << 24) | (uint32_t(uint8_t(p[1])) << 16) |
         (uint32_t(uint8_t(p[2])) << 8) | uint32_t(uint8_t(p[3]));
}

void serve_session(UniqueFd client, sockaddr_in up, const std::string& path, int sndbuf,
                   SpliceEngine* eng, SkmsgReply* skm, RelayCounters& rc);

void serve_client(UniqueFd client, sockaddr_in up, const std::string& path, int sndbuf,
                  SpliceEngine* eng, SkmsgReply* skm, RelayCounters& rc) {
  serve_session(std::move(client), up, path, sndbuf, eng, skm, rc);
  rc.active.fetch_sub(1);
}

void serve_session(UniqueFd client, sockaddr_in up, const std::string& path, int sndbuf,
                   SpliceEngine* eng, SkmsgReply* skm, RelayCounters& rc) {
  rc.clients.fetch_add(1);
  UniqueFd server(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (connect(server.get(), reinterpret_cast<sockaddr*>(&up), sizeof(up)) != 0) return;
  int one = 1;
  for (int fd : {client.get(), server.get()}) {
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (sndbuf > 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
  }
  // Startup packet(s): answer SSLRequest / GSSENCRequest with 'N' ourselves.
  std::string startup;
  for (;;) {
    char hdr[4];
    if (!read_exact(client.get(), hdr, 4)) return;
    uint32_t len = be32(hdr);
    if (len < 8 || len > 10000) return;
    std::string body(len - 4, '\0');
    if (!read_exact(client.get(), body.data(), body.size())) return;
    uint32_t code = be32(body.data());
    if (code == 80877103 || code == 80877104) {
      if (!write_all(client.get(), "N", 1)) return;
      continue;
    }
    startup.assign(hdr, 4);
    startup += body;
    break;
  }
  if (!write_all(server.get(), startup.data(), startup.size())) return;
  // Authentication: client bytes go through raw; backend messages are framed until the first
  // ReadyForQuery, which is held back until the pair is spliced (the client stays quiet until
  // it gets it, the backend after sending it: both receive queues are empty).
  std::vector<char> buf(64 * 1024);
  pollfd fds[2] = {{client.get(), POLLIN, 0}, {server.get(), POLLIN, 0}};
  std::string pending;  // backend bytes not yet forwarded (whole messages only)
  bool ready = false;
  while (!ready) {
    if (poll(fds, 2, 10000) <= 0) return;
    if (fds[0].revents) {
      ssize_t r = recv(client.get(), buf.data(), buf.size(), 0);
      if (r <= 0 || !write_all(server.get(), buf.data(), size_t(r))) return;
    }
    if (fds[1].revents) {
      ssize_t r = recv(server.get(), buf.data(), buf.size(), 0);
      if (r <= 0) return;
      pending.append(buf.data(), size_t(r));
      size_t pos = 0;
      while (pending.size() - pos >= 5) {
        uint32_t len = be32(pending.data() + pos + 1);
        if (pending.size() - pos < 1 + size_t(len)) break;
        char type = pending[pos];
        pos += 1 + len;
        if (type == 'Z') {
          ready = true;
          break;
        }
      }
      std::string now = pending.substr(0, pos);
      pending.erase(0, pos);
      if (ready) {
        if (!pending.empty()) return;  // bytes after the first ReadyForQuery: unexpected
        std::string rfq = now.substr(now.size() - 6);
        now.resize(now.size() - 6);
        if (!write_all(client.get(), now.data(), now.size())) return;
        if (skm) {
          uint32_t slot = rc.next_slot.fetch_add(1) % HELIOS_SKMSG_MAX_LEASES;
          auto in = skm->backend_in_map(server.get());
          if (!in || !*in) {
            rc.not_in_map.fetch_add(1);
          } else if (skm->route(server.get(), slot, client.get())) {
            rc.routed.fetch_add(1);
            if (!write_all(client.get(), rfq.data(), rfq.size())) return;
            skmsg_session(client.get(), server.get(), *skm, slot, rc);
            return;
          }
        }
        if (eng) {
          auto c = eng->add(client.get(), SPLICE_ROLE_CLIENT);
          auto b = eng->add(server.get(), SPLICE_ROLE_BACKEND);
          if (c && b) {
            LeaseInfo li;
            li.seq = 1;
            li.mode = SPLICE_MODE_SESSION;
            if (eng->splice(c->cookie, b->cookie, li, {})) rc.spliced.fetch_add(1);
          }
        }
        if (!write_all(client.get(), rfq.data(), rfq.size())) return;
      } else if (!write_all(client.get(), now.data(), now.size())) {
        return;
      }
    }
  }
  // From here: spliced (nothing comes up unless the kernel hands the lease back, e.g. on
  // Terminate) or copied in user space. Either way, copy whatever comes up.
  copy_loop(client.get(), server.get(), rc);
  if (eng) {
    if (auto cs = socket_cookie(client.get()); cs) {
      if (auto st = eng->socket_state(*cs); st && st->handbacks) rc.handbacks.fetch_add(1);
      (void)eng->remove(*cs);
    }
    if (auto bs = socket_cookie(server.get()); bs) (void)eng->remove(*bs);
  }
}

int cmd_pgrelay(const std::string& path, uint16_t port, const std::string& upstream, int sndbuf) {
  auto ep = parse_endpoint(upstream);
  if (!ep || !ep->addr.is_v4()) {
    std::cerr << "--upstream must be IPV4:PORT\n";
    return 2;
  }
  sockaddr_in up{};
  up.sin_family = AF_INET;
  std::memcpy(&up.sin_addr, ep->addr.bytes + 12, 4);
  up.sin_port = htons(ep->port);
  SpliceEngine eng;
  if (path == "splice") {
    SpliceOptions o;
    o.instance = "bench-pgrelay-" + std::to_string(getpid());
    o.pin = false;
    auto e = SpliceEngine::load(o);
    if (!e) {
      std::cout << json{{"event", "error"}, {"message", e.error().message}}.dump() << std::endl;
      return is_missing_feature(e.error()) ? 3 : 1;
    }
    eng = std::move(*e);
  }
  std::optional<SkmsgReply> skm;
  if (path == "skmsg") {  // before any connection to PostgreSQL: sockops adds them as they come
    auto r = SkmsgReply::attach({ep->port, ""});
    if (!r) {
      std::cout << json{{"event", "error"}, {"message", r.error().message}}.dump() << std::endl;
      return is_missing_feature(r.error()) ? 3 : 1;
    }
    skm.emplace(std::move(*r));
  }
  UniqueFd l(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  setsockopt(l.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(port);
  if (bind(l.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) || listen(l.get(), 512)) {
    std::cout << json{{"event", "error"}, {"message", strerror(errno)}}.dump() << std::endl;
    return 1;
  }
  RelayCounters rc;
  std::cout << json{{"event", "listening"}, {"port", port}, {"path", path}}.dump() << std::endl;
  pollfd fds[2] = {{l.get(), POLLIN, 0}, {0, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, 500) < 0 && errno != EINTR) break;
    if (fds[1].revents) {
      char b[64];
      if (read(0, b, sizeof(b)) <= 0) break;
    }
    if (fds[0].revents & POLLIN) {
      UniqueFd c(accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) continue;
      rc.active.fetch_add(1);
      std::thread(serve_client, std::move(c), up, path, sndbuf, path == "splice" ? &eng : nullptr,
                  skm ? &*skm : nullptr, std::ref(rc))
          .detach();
    }
  }
  // The clients are gone when stdin closes; let their sessions notice and add their counters.
  for (int i = 0; i < 300 && rc.active.load() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  json out{{"event", "done"},
           {"unfinished_sessions", rc.active.load()},
           {"clients", rc.clients.load()},
           {"spliced", rc.spliced.load()},
           {"user_bytes", rc.user_bytes.load()},
           {"handbacks", rc.handbacks.load()}};
  if (path == "splice")
    if (auto s = eng.stats(); s)
      out["kernel"] = {{"forwarded_skbs", s->forwarded_skbs},
                       {"passed_skbs", s->passed_skbs},
                       {"bytes", s->bytes}};
  if (skm) {
    out["skmsg"] = {{"routed", rc.routed.load()},
                    {"not_in_map", rc.not_in_map.load()},
                    {"armed", rc.armed.load()},
                    {"arm_skipped", rc.arm_skipped.load()},
                    {"ended", rc.ended.load()},
                    {"rfq", rc.rfq.load()},
                    {"redirected_bytes", rc.redirected_bytes.load()},
                    {"client_bytes_written", rc.client_bytes_written.load()},
                    {"mismatch_sessions", rc.mismatch_sessions.load()},
                    {"mismatch_bytes", rc.mismatch_bytes.load()},
                    {"lease_errors", rc.lease_errors.load()},
                    {"relay_to_client_bytes", rc.relay_to_client.load()}};
    if (auto s = skm->stats(); s)
      out["kernel"] = {{"added", s->added},
                       {"runs", s->runs},
                       {"passed", s->passed},
                       {"redirected", s->redirected},
                       {"bytes_redirected", s->bytes_redirected},
                       {"redirect_failed", s->redirect_failed},
                       {"rfq_idle", s->rfq_idle},
                       {"pulls", s->pulls},
                       {"split", s->split},
                       {"framing_errors", s->framing_errors},
                       {"redirect_errors", s->redirect_errors},
                       {"replayed_bytes", s->replayed_bytes},
                       {"ends_redone", s->ends_redone}};
  }
  std::cout << out.dump() << std::endl;
  std::_Exit(0);  // detached client threads may still hold sockets; the process is done
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"HeliosProxy kernel data path bench helper"};
  app.require_subcommand(1);
  std::string instance = "bench", cgroup, path = "splice";
  std::vector<std::string> endpoints;
  uint64_t size = 100, count = 10000;
  int pairs = 1, sndbuf = 0;
  auto* by = app.add_subcommand("bypass", "attach the same-host bypass until stdin closes");
  by->add_option("--instance", instance);
  by->add_option("--endpoint", endpoints, "ADDR:PORT[=proxy|db]")->required();
  by->add_option("--cgroup", cgroup, "cgroup v2 directory (default: the v2 mount)");
  auto* rl = app.add_subcommand("relay", "relay microbench: splice vs user-space copy");
  rl->add_option("--path", path)->check(CLI::IsMember({"splice", "user"}));
  rl->add_option("--size", size, "DataRow body bytes per answer");
  rl->add_option("--count", count, "round trips per pair");
  rl->add_option("--pairs", pairs, "concurrent app/db pairs");
  rl->add_option("--sndbuf", sndbuf, "SO_SNDBUF of the relay's two sockets (0: autotuned)");
  uint16_t listen_port = 0;
  std::string upstream;
  auto* pr = app.add_subcommand("pgrelay", "session relay in front of PostgreSQL");
  pr->add_option("--path", path)->check(CLI::IsMember({"splice", "user", "skmsg"}));
  pr->add_option("--listen", listen_port)->required();
  pr->add_option("--upstream", upstream, "PostgreSQL IPV4:PORT")->required();
  pr->add_option("--sndbuf", sndbuf, "SO_SNDBUF of both sockets (0: autotuned)");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);  // stdout carries JSON only
  if (*by) return cmd_bypass(instance, endpoints, cgroup);
  if (*pr) return cmd_pgrelay(path, listen_port, upstream, sndbuf);
  return cmd_relay(path, size, count, pairs, sndbuf);
}
