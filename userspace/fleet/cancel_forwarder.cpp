#include "fleet/cancel_forwarder.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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

void CancelForwarder::run() {
  std::vector<InFlight> flying;
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
    int timeout_ms = -1;  // nothing connecting: until woken
    for (const InFlight& f : flying) {
      int64_t left = std::max<int64_t>(0, (f.deadline - now) / kNanosPerMilli + 1);
      if (timeout_ms < 0 || left < timeout_ms) timeout_ms = int(left);
    }
    fds.assign(1, pollfd{wake_.get(), POLLIN, 0});
    for (const InFlight& f : flying) fds.push_back(pollfd{f.fd.get(), POLLOUT, 0});
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) {
      log::warn("fleet: cancel forwarder poll: {}", std::strerror(errno));
      break;
    }
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      [[maybe_unused]] ssize_t r = ::read(wake_.get(), &v, sizeof v);
    }
    now = monotonic_now();
    std::vector<InFlight> still;
    for (size_t i = 0; i < flying.size(); ++i) {
      InFlight& f = flying[i];
      short ev = n > 0 ? fds[i + 1].revents : 0;
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
  }
  for (InFlight& f : flying) finish(f, false);
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < jobs_.size(); ++i) pending_.fetch_sub(1, std::memory_order_relaxed);
  jobs_.clear();
}

}  // namespace helios::fleet
