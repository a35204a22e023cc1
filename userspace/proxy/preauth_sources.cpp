#include "proxy/preauth_sources.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string_view>

namespace helios::proxy {

std::optional<SourceKey> source_key_of(const sockaddr_storage& peer) {
  SourceKey k;
  if (peer.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(peer);
    k.family = 4;
    std::memcpy(k.addr.data(), &a.sin_addr, 4);
    return k;
  }
  if (peer.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(peer);
    const uint8_t* b = a.sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr)) {
      k.family = 4;
      std::memcpy(k.addr.data(), b + 12, 4);
      return k;
    }
    k.family = 6;
    std::memcpy(k.addr.data(), b, 8);  // the /64
    return k;
  }
  return std::nullopt;
}

std::string peer_text(const sockaddr_storage& peer) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (peer.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(peer);
    if (inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf)) return buf;
  } else if (peer.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(peer);
    if (inet_ntop(AF_INET6, &a.sin6_addr, buf, sizeof buf)) return buf;
  }
  return "local";
}

size_t PreauthSources::Hash::operator()(const SourceKey& k) const {
  std::string_view bytes(reinterpret_cast<const char*>(k.addr.data()), k.addr.size());
  return std::hash<std::string_view>{}(bytes) ^ k.family;
}

bool PreauthSources::try_enter(const SourceKey& key, int64_t limit) {
  std::lock_guard lock(mu_);
  uint32_t& n = counts_[key];
  if (limit > 0 && int64_t(n) >= limit) {
    if (n == 0) counts_.erase(key);
    return false;
  }
  ++n;
  return true;
}

void PreauthSources::leave(const SourceKey& key) {
  std::lock_guard lock(mu_);
  auto it = counts_.find(key);
  if (it == counts_.end()) return;
  if (--it->second == 0) counts_.erase(it);
}

size_t PreauthSources::sources() const {
  std::lock_guard lock(mu_);
  return counts_.size();
}

uint32_t PreauthSources::count(const SourceKey& key) const {
  std::lock_guard lock(mu_);
  auto it = counts_.find(key);
  return it == counts_.end() ? 0 : it->second;
}

}  // namespace helios::proxy
