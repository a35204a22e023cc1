#include "io/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>

#include <charconv>
#include <cstring>

namespace helios::io {

Result<HostPort> parse_host_port(std::string_view s) {
  HostPort hp;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return Error::invalid("expected [IPv6]:port, got \"" + std::string(s) + "\"");
    hp.host = std::string(s.substr(1, close - 1));
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos)
      return Error::invalid("expected host:port, got \"" + std::string(s) + "\"");
    hp.host = std::string(s.substr(0, colon));
    port = s.substr(colon + 1);
  }
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || ptr != port.data() + port.size() || p == 0 || p > 65535)
    return Error::invalid("invalid port in \"" + std::string(s) + "\"");
  hp.port = static_cast<uint16_t>(p);
  if (hp.host.empty()) hp.host = "0.0.0.0";
  return hp;
}

Result<sockaddr_storage> resolve(const HostPort& hp, socklen_t* len) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(hp.port);
  int rc = getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return Error{EINVAL, "resolve " + hp.host + ": " + gai_strerror(rc)};
  sockaddr_storage ss{};
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return ss;
}

Result<UniqueFd> listen_tcp(const HostPort& hp, bool reuse_port, int backlog) {
  socklen_t len = 0;
  auto addr = resolve(hp, &len);
  if (!addr) return addr.error();
  UniqueFd fd(::socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno("socket");
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port && setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
    return Error::from_errno("setsockopt SO_REUSEPORT");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&*addr), len) < 0)
    return Error::from_errno("bind " + hp.host + ":" + std::to_string(hp.port));
  if (::listen(fd.get(), backlog) < 0) return Error::from_errno("listen");
  return fd;
}

void tune_stream_socket(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

}  // namespace helios::io
