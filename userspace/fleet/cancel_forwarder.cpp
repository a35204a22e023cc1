#include "fleet/cancel_forwarder.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "common/log.h"

namespace helios::fleet {
namespace {

constexpr int32_t kCancelRequestCode = (1234 << 16) | 5678;

void put_i32(char* p, int32_t v) {
  uint32_t n = htonl(uint32_t(v));
  std::memcpy(p, &n, 4);
}

}  // namespace

CancelForwarder::~CancelForwarder() {
  stop();
}

void CancelForwarder::start() {
  wake_ = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_) {
    log::warn("fleet: cancel forwarding is off (eventfd: {})", std::strerror(errno));
    return;
  }
  thread_ = std::thread([this] { run(); });
  std::lock_guard lock(mu_);
  running_ = true;
}

void CancelForwarder::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  if (wake_) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
}

void CancelForwarder::set_peers(std::vector<PeerAddress> peers) {
  std::lock_guard lock(mu_);
  peers_ = std::move(peers);
}

std::vector<PeerAddress> CancelForwarder::peers() const {
  std::lock_guard lock(mu_);
  return peers_;
}

CancelForwarder::Outcome CancelForwarder::forward(uint32_t peer, int32_t pid, int32_t key) {
  {
    std::lock_guard lock(mu_);
    auto it = std::find_if(peers_.begin(), peers_.end(),
                           [peer](const PeerAddress& p) { return p.peer == peer; });
    if (it == peers_.end() || stop_ || !running_) {
      unknown_peer_.fetch_add(1, std::memory_order_relaxed);
      return Outcome::kUnknownPeer;
    }
    if (pending_.load(std::memory_order_relaxed) >= kMaxInFlight) {
      busy_.fetch_add(1, std::memory_order_relaxed);
      return Outcome::kBusy;
    }
    pending_.fetch_add(1, std::memory_order_relaxed);
    jobs_.push_back({it->sa, it->sa_len, pid, key});
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
  return Outcome::kQueued;
}

CancelCounters CancelForwarder::counters() const {
  return {forwarded_.load(std::memory_order_relaxed), received_.load(std::memory_order_relaxed),
          unknown_peer_.load(std::memory_order_relaxed), busy_.load(std::memory_order_relaxed),
          unreachable_.load(std::memory_order_relaxed)};
}

void CancelForwarder::finish(InFlight& f, bool ok) {
  if (ok) {
    char msg[16];
    put_i32(msg, 16);
    put_i32(msg + 4, kCancelRequestCode);
    put_i32(msg + 8, f.pid);
    put_i32(msg + 12, f.key);
    // A fresh connection's send buffer takes 16 bytes at once.
    ok = ::send(f.fd.get(), msg, sizeof msg, MSG_NOSIGNAL) == ssize_t(sizeof msg);
  }
  (ok ? forwarded_ : unreachable_).fetch_add(1, std::memory_order_relaxed);
  f.fd.reset();
  pending_.fetch_sub(1, std::memory_order_relaxed);
}

void CancelForwarder::begin(const Job& j, std::vector<InFlight>& flying) {
  InFlight f{UniqueFd(::socket(j.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)),
             monotonic_now() + kTimeout, j.pid, j.key};
  if (!f.fd) {
    finish(f, false);
    return;
  }
  int one = 1;
  ::setsockopt(f.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int rc = ::connect(f.fd.get(), reinterpret_cast<const sockaddr*>(&j.sa), j.sa_len);
  if (rc == 0) {
    finish(f, true);
  } else if (errno == EINPROGRESS) {
    flying.push_back(std::move(f));
  } else {
    finish(f, false);
  }
}

Status CancelForwarder::listen(const config::HostPort& where,
                               std::function<void(int32_t, int32_t)> deliver) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(where.port);
  const char* host = where.host.empty() ? nullptr : where.host.c_str();
  if (int rc = getaddrinfo(host, port.c_str(), &hints, &res); rc != 0)
    return Error::invalid("cancel_address " + where.to_string() + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> hold(res, freeaddrinfo);
  UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno("cancel_address socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0)
    return Error::from_errno("cancel_address " + where.to_string() + ": bind");
  if (::listen(fd.get(), 128) != 0) return Error::from_errno("cancel_address listen");
  listener_ = std::move(fd);
  deliver_ = std::move(deliver);
  return {};
}

void CancelForwarder::accept_inbound(std::vector<Inbound>& inbound) {
  for (;;) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (inbound.size() >= kMaxInFlight) {  // a flood: the oldest keep their turn
      ::close(fd);
      continue;
    }
    Inbound in;
    in.fd = UniqueFd(fd);
    in.deadline = monotonic_now() + kTimeout;
    inbound.push_back(std::move(in));
  }
}

bool CancelForwarder::read_inbound(Inbound& in) {
  ssize_t n = ::recv(in.fd.get(), in.buf + in.got, sizeof in.buf - in.got, 0);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (n == 0) return false;
  in.got += size_t(n);
  if (in.got < sizeof in.buf) return true;
  uint32_t v[4];
  std::memcpy(v, in.buf, sizeof v);
  if (ntohl(v[0]) == 16 && int32_t(ntohl(v[1])) == kCancelRequestCode && deliver_) {
    received_.fetch_add(1, std::memory_order_relaxed);
    deliver_(int32_t(ntohl(v[2])), int32_t(ntohl(v[3])));
  }
  return false;  // one request per connection, no answer (as PostgreSQL)
}

void CancelForwarder::run() {
  std::vector<InFlight> flying;
  std::vector<Inbound> inbound;
  std::vector<pollfd> fds;
  for (;;) {
    std::vector<Job> jobs;
    {
      std::lock_guard lock(mu_);
      if (stop_) break;
      jobs.swap(jobs_);
    }
    for (const Job& j : jobs) begin(j, flying);
    Nanos now = monotonic_now();
    int timeout_ms = -1;  // nothing pending: until woken
    auto bound = [&](Nanos deadline) {
      int64_t left = std::max<int64_t>(0, (deadline - now) / kNanosPerMilli + 1);
      if (timeout_ms < 0 || left < timeout_ms) timeout_ms = int(left);
    };
    for (const InFlight& f : flying) bound(f.deadline);
    for (const Inbound& in : inbound) bound(in.deadline);
    // [0] wake, [1] listener (-1 when none: poll skips it), then flying, then inbound.
    fds.assign({pollfd{wake_.get(), POLLIN, 0}, pollfd{listener_.get(), POLLIN, 0}});
    for (const InFlight& f : flying) fds.push_back(pollfd{f.fd.get(), POLLOUT, 0});
    for (const Inbound& in : inbound) fds.push_back(pollfd{in.fd.get(), POLLIN, 0});
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) {
      log::warn("fleet: cancel forwarder poll: {}", std::strerror(errno));
      break;
    }
    if (n < 0)
      for (pollfd& p : fds) p.revents = 0;
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      [[maybe_unused]] ssize_t r = ::read(wake_.get(), &v, sizeof v);
    }
    now = monotonic_now();
    const size_t inbound_at = 2 + flying.size();
    std::vector<InFlight> still;
    for (size_t i = 0; i < flying.size(); ++i) {
      InFlight& f = flying[i];
      short ev = fds[2 + i].revents;
      if (ev) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(f.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        finish(f, err == 0 && (ev & POLLOUT));
      } else if (now >= f.deadline) {
        finish(f, false);
      } else {
        still.push_back(std::move(f));
      }
    }
    flying.swap(still);
    std::vector<Inbound> reading;
    for (size_t i = 0; i < inbound.size(); ++i) {
      Inbound& in = inbound[i];
      short ev = fds[inbound_at + i].revents;
      bool keep = ev ? read_inbound(in) : true;
      if (keep && now < in.deadline) reading.push_back(std::move(in));
    }
    inbound.swap(reading);
    if (fds[1].revents & POLLIN) accept_inbound(inbound);
  }
  for (InFlight& f : flying) finish(f, false);
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < jobs_.size(); ++i) pending_.fetch_sub(1, std::memory_order_relaxed);
  jobs_.clear();
}

}  // namespace helios::fleet
