// The untyped first packet a client sends: StartupMessage, SSLRequest, GSSENCRequest or
// CancelRequest (int32 length including itself, int32 code, body). No I/O here.
//
// Usage: once 8 bytes have arrived, peek_startup_header() tells the kind and declared length, so
// an oversized or impossible packet is refused before it is buffered; once `length` bytes are
// in, parse_startup_packet() validates and decodes the whole packet.
//
// Every error has code EPROTO and a message meant to be sent as-is in a FATAL ErrorResponse with
// SQLSTATE 08P01 (protocol_violation), except an unsupported protocol version, which PostgreSQL
// reports with 0A000 (feature_not_supported): see StartupError below.
#pragma once

#include <cerrno>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace helios::pg {

enum class StartupKind { Startup, SslRequest, GssEncRequest, CancelRequest };
std::string_view to_string(StartupKind kind);

// Error code for a protocol version this codec does not speak (major != 3 or an unknown
// 1234.x request code). Map it to SQLSTATE 0A000; every other startup error is EPROTO -> 08P01.
constexpr int kStartupUnsupportedProtocol = EPROTONOSUPPORT;

struct StartupHeader {
  StartupKind kind = StartupKind::Startup;
  uint32_t length = 0;  // declared packet length, including the length field
  int32_t code = 0;     // protocol version or request code
};

// Decodes the first 8 bytes (`first` may be longer; fewer than 8 is an error with code EAGAIN,
// meaning "wait for more"). Refuses a length outside 8..kMaxStartupPacket (so 2^31-1 is refused
// here), a special request whose length is not its fixed size, and unknown protocol majors.
Result<StartupHeader> peek_startup_header(std::span<const uint8_t> first);

struct StartupPacket {
  StartupKind kind = StartupKind::Startup;
  int32_t protocol = 0;  // full code as sent (Startup only)
  int major = 0;
  int minor = 0;  // > 0: answer with NegotiateProtocolVersion (newest minor 0)

  // Startup: every name/value pair in the order sent, except "_pq_." protocol options.
  std::vector<std::pair<std::string, std::string>> parameters;
  std::string user;
  std::string database;  // defaults to user when not sent or empty
  // "_pq_." options the client asked for; none is supported, all are reported back.
  std::vector<std::string> unsupported_options;

  // CancelRequest only.
  int32_t cancel_process_id = 0;
  int32_t cancel_secret_key = 0;

  bool needs_protocol_negotiation() const {
    return kind == StartupKind::Startup && (minor > 0 || !unsupported_options.empty());
  }
  // Value of a startup parameter, or nullptr.
  const std::string* find(std::string_view name) const;
};

// The SQLSTATE to send (in a FATAL ErrorResponse) for an error from this file: 0A000 for
// kStartupUnsupportedProtocol, 08P01 (protocol_violation) for everything else.
std::string_view startup_error_sqlstate(const Error& e);

// Parses a whole packet, length field included; packet.size() must equal the declared length.
// Startup rules: protocol major 3; name/value pairs are NUL-terminated and the list ends with an
// extra NUL as the last byte; "user" is required and non-empty; a name may appear only once;
// names may not be empty.
Result<StartupPacket> parse_startup_packet(std::span<const uint8_t> packet);

}  // namespace helios::pg
