// Unauthenticated connections per source address, across every worker: a client counts from
// accept until it is authenticated or gone. A source over [proxy] max_unauthenticated_per_source
// is refused at accept, so one address cannot hold the startup_timeout window open for
// thousands of half-open logins.
//
// Sources are keyed by IPv4 address, or by IPv6 /64 (one host usually owns a whole /64).
// Non-IP peers (Unix sockets) have no key and are not limited. Connect-time only: a mutex and a
// small hash map holding only sources with at least one unauthenticated connection.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace helios::proxy {

struct SourceKey {
  uint8_t family = 0;              // 4 or 6
  std::array<uint8_t, 16> addr{};  // IPv4: first 4 bytes; IPv6: the /64 prefix, rest zero
  bool operator==(const SourceKey&) const = default;
};

// The key of a peer address, or nullopt for a non-IP peer. An IPv4-mapped IPv6 address is
// keyed as the IPv4 address.
std::optional<SourceKey> source_key_of(const sockaddr_storage& peer);
// The peer address as text for log lines ("192.0.2.1", "2001:db8::1"), "local" for non-IP.
std::string peer_text(const sockaddr_storage& peer);

class PreauthSources {
 public:
  // Counts one more unauthenticated connection from `key`; false (and not counted) when the
  // source already has `limit` of them. limit <= 0 means unlimited.
  bool try_enter(const SourceKey& key, int64_t limit);
  void leave(const SourceKey& key);
  // Sources with at least one unauthenticated connection (for tests and the admin view).
  size_t sources() const;
  uint32_t count(const SourceKey& key) const;

 private:
  struct Hash {
    size_t operator()(const SourceKey& k) const;
  };
  mutable std::mutex mu_;
  std::unordered_map<SourceKey, uint32_t, Hash> counts_;
};

}  // namespace helios::proxy
