// Listening sockets and address parsing.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/unique_fd.h"

namespace helios::io {

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// "0.0.0.0:5432", "[::1]:5432", "localhost:5432".
Result<HostPort> parse_host_port(std::string_view s);

// Resolves a numeric or named host (AF_INET/AF_INET6) into a sockaddr.
Result<sockaddr_storage> resolve(const HostPort& hp, socklen_t* len);

// A non-blocking listening TCP socket with SO_REUSEADDR and, if asked, SO_REUSEPORT so every
// worker (and a successor process during an online restart) can listen on the same port.
Result<UniqueFd> listen_tcp(const HostPort& hp, bool reuse_port, int backlog = 4096);

// Applies the per-connection socket options the proxy wants (TCP_NODELAY, keepalive).
void tune_stream_socket(int fd);

}  // namespace helios::io
