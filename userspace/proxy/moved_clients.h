// Where a client that moved to another worker lives now, for its CancelRequests.
//
// A client's BackendKeyData names the worker and slot it had when it logged in (cancel_key.h),
// and clients move between workers between transactions (workers that follow the load,
// worker_move.cpp). A CancelRequest is looked up here first: a client that moved is found by
// its key (process id and secret, both as the client holds them), one that never moved is not
// here and its key routes as it says. Written only when a client moves or a moved client
// closes; read only for a CancelRequest. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace helios::proxy {

class MovedClients {
 public:
  struct Location {
    uint16_t worker = 0;
    uint32_t slot = 0;
  };

  void record(int32_t pid, uint32_t secret, Location at) {
    std::lock_guard lock(mu_);
    where_[key(pid, secret)] = at;
  }
  void forget(int32_t pid, uint32_t secret) {
    std::lock_guard lock(mu_);
    where_.erase(key(pid, secret));
  }
  std::optional<Location> find(int32_t pid, uint32_t secret) const {
    std::lock_guard lock(mu_);
    if (where_.empty()) return std::nullopt;
    auto it = where_.find(key(pid, secret));
    if (it == where_.end()) return std::nullopt;
    return it->second;
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return where_.size();
  }

 private:
  static uint64_t key(int32_t pid, uint32_t secret) {
    return uint64_t(uint32_t(pid) & 0x7fffffffu) << 32 | secret;  // without the forwarded mark
  }
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Location> where_;
};

}  // namespace helios::proxy
