// Sends CancelRequests on to the fleet instance that owns the session (docs/fleet.md, "Cancels").
// A worker that gets a CancelRequest whose key carries another live instance's peer number hands
// it here (forward(): a lock and an eventfd write, never a wait); this class's own thread opens a
// non-blocking TCP connection to that instance's published cancel address, writes the 16 bytes
// and closes. Bounded: at most kMaxInFlight requests queued or connecting, each given up after
// kTimeout. Unknown peers and overflow are dropped silently, as PostgreSQL drops a bad key.
// With a cancel_address of its own (instances sharing one SO_REUSEPORT port), the same thread
// also listens there and hands each CancelRequest it reads to the proxy (listen()).
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "config/config.h"

namespace helios::fleet {

struct PeerAddress {
  uint32_t peer = 0;
  std::string instance_id;
  std::string address;  // numeric "ip:port" / "[ip6]:port", as published
  sockaddr_storage sa{};
  socklen_t sa_len = 0;
};

struct CancelCounters {
  uint64_t forwarded = 0;     // written to the owning instance (no answer confirms it)
  uint64_t received = 0;      // forwarded here by another instance
  uint64_t unknown_peer = 0;  // another instance's number, but no live instance has it
  uint64_t busy = 0;          // kMaxInFlight already queued or connecting
  uint64_t unreachable = 0;   // connect refused, failed or not done within kTimeout
};

class CancelForwarder {
 public:
  static constexpr size_t kMaxInFlight = 64;
  static constexpr Nanos kTimeout = 1000 * kNanosPerMilli;

  CancelForwarder() = default;
  ~CancelForwarder();
  CancelForwarder(const CancelForwarder&) = delete;
  CancelForwarder& operator=(const CancelForwarder&) = delete;

  // Before start(): listen on `where` for forwarded CancelRequests, each handed to `deliver`
  // (on this class's thread).
  Status listen(const config::HostPort& where,
                std::function<void(int32_t pid, int32_t key)> deliver);
  void start();
  void stop();

  // The live instances other than this one (from each renewal; kept while Redis is away).
  void set_peers(std::vector<PeerAddress> peers);
  std::vector<PeerAddress> peers() const;

  enum class Outcome { kQueued, kUnknownPeer, kBusy };
  // Any thread. pid is sent as given (the caller marks it forwarded).
  Outcome forward(uint32_t peer, int32_t pid, int32_t key);
  void note_received() { received_.fetch_add(1, std::memory_order_relaxed); }
  CancelCounters counters() const;

 private:
  struct Job {
    sockaddr_storage sa;
    socklen_t sa_len;
    int32_t pid, key;
  };
  struct InFlight {
    UniqueFd fd;
    Nanos deadline;
    int32_t pid, key;
  };
  struct Inbound {  // a connection to the cancel listener, reading its 16 bytes
    UniqueFd fd;
    Nanos deadline;
    char buf[16] = {};
    size_t got = 0;
  };
  void run();
  void begin(const Job& j, std::vector<InFlight>& flying);
  void finish(InFlight& f, bool ok);
  void accept_inbound(std::vector<Inbound>& inbound);
  bool read_inbound(Inbound& in);  // false: done with it

  mutable std::mutex mu_;  // guards peers_, jobs_, stop_, running_
  std::vector<PeerAddress> peers_;
  std::vector<Job> jobs_;
  bool stop_ = false;
  bool running_ = false;
  UniqueFd wake_;  // eventfd
  UniqueFd listener_;
  std::function<void(int32_t, int32_t)> deliver_;
  std::atomic<size_t> pending_{0};  // queued + connecting
  std::atomic<uint64_t> forwarded_{0}, received_{0}, unknown_peer_{0}, busy_{0}, unreachable_{0};
  std::thread thread_;
};

}  // namespace helios::fleet
