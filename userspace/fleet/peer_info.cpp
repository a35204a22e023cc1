#include "fleet/peer_info.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

namespace helios::fleet {
namespace {

std::string_view field(std::string_view info, std::string_view name) {
  size_t at = 0;
  while (at < info.size()) {
    size_t end = info.find(' ', at);
    if (end == std::string_view::npos) end = info.size();
    std::string_view tok = info.substr(at, end - at);
    if (tok.size() > name.size() && tok.substr(0, name.size()) == name && tok[name.size()] == '=')
      return tok.substr(name.size() + 1);
    at = end + 1;
  }
  return {};
}

}  // namespace

bool parse_numeric_address(std::string_view text, PeerAddress& out) {
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return false;
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  uint32_t port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
    return false;
  std::memset(&out.sa, 0, sizeof out.sa);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.sa);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.sa);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(uint16_t(port));
    out.sa_len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(uint16_t(port));
    out.sa_len = sizeof(sockaddr_in6);
  } else {
    return false;
  }
  out.address = std::string(text);
  return true;
}

std::optional<PeerAddress> parse_member_info(std::string_view info) {
  std::string_view peer_text = field(info, "peer"), cancel = field(info, "cancel");
  uint32_t peer = 0;
  auto [end, ec] = std::from_chars(peer_text.data(), peer_text.data() + peer_text.size(), peer);
  if (peer_text.empty() || ec != std::errc() || end != peer_text.data() + peer_text.size() ||
      peer == 0)
    return std::nullopt;
  PeerAddress p;
  p.peer = peer;
  if (!parse_numeric_address(cancel, p)) return std::nullopt;
  return p;
}

Result<std::string> resolve_cancel_address(const config::HostPort& where) {
  std::string host = where.host;
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "*") {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0) return Error::from_errno("gethostname");
    host = name;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(where.port);
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0 || !res)
    return Error::invalid("cannot resolve " + host + ": " + gai_strerror(rc));
  char text[INET6_ADDRSTRLEN] = {};
  std::string out;
  if (res->ai_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr, text,
              sizeof text);
    out = "[" + std::string(text) + "]:" + port;
  } else {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, text, sizeof text);
    out = std::string(text) + ":" + port;
  }
  freeaddrinfo(res);
  return out;
}

}  // namespace helios::fleet
