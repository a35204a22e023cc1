#include "pg/startup.h"

#include <algorithm>
#include <string>

#include "pg/protocol.h"
#include "pg/reader.h"
#include "pg/sqlstate.h"

namespace helios::pg {

namespace {

Error violation(std::string message) {
  return Error{EPROTO, std::move(message)};
}

Error unsupported_protocol(int32_t code) {
  return Error{kStartupUnsupportedProtocol,
               "unsupported frontend protocol " + std::to_string(protocol_major(code)) + "." +
                   std::to_string(protocol_minor(code)) + ": server supports 3.0 to 3." +
                   std::to_string(kNewestMinorVersion)};
}

constexpr char kLayoutError[] = "invalid startup packet layout: expected terminator as last byte";

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

Status parse_parameters(MessageReader& r, StartupPacket& p) {
  while (true) {
    if (r.at_end()) return violation(kLayoutError);
    const std::string_view name = r.get_cstring();
    if (!r.ok()) return violation(kLayoutError);
    if (name.empty()) {  // the list terminator: must be the last byte
      if (!r.at_end()) return violation(kLayoutError);
      return {};
    }
    if (r.at_end()) {
      return violation("invalid startup packet layout: startup parameter \"" + std::string(name) +
                       "\" has no value");
    }
    const std::string_view value = r.get_cstring();
    if (!r.ok()) return violation(kLayoutError);
    const bool seen = std::any_of(p.parameters.begin(), p.parameters.end(),
                                  [&](const auto& kv) { return kv.first == name; }) ||
                      std::find(p.unsupported_options.begin(), p.unsupported_options.end(), name) !=
                          p.unsupported_options.end();
    if (seen) {
      return violation("invalid startup packet: duplicate startup parameter \"" +
                       std::string(name) + "\"");
    }
    if (starts_with(name, kProtocolOptionPrefix)) {
      p.unsupported_options.emplace_back(name);
    } else {
      p.parameters.emplace_back(std::string(name), std::string(value));
    }
  }
}

}  // namespace

std::string_view to_string(StartupKind kind) {
  switch (kind) {
    case StartupKind::Startup:
      return "StartupMessage";
    case StartupKind::SslRequest:
      return "SSLRequest";
    case StartupKind::GssEncRequest:
      return "GSSENCRequest";
    case StartupKind::CancelRequest:
      return "CancelRequest";
  }
  return "unknown";
}

std::string_view startup_error_sqlstate(const Error& e) {
  return e.code == kStartupUnsupportedProtocol ? sqlstate::kFeatureNotSupported
                                               : sqlstate::kProtocolViolation;
}

const std::string* StartupPacket::find(std::string_view name) const {
  for (const auto& [k, v] : parameters) {
    if (k == name) return &v;
  }
  return nullptr;
}

Result<StartupHeader> peek_startup_header(std::span<const uint8_t> first) {
  if (first.size() < 8) {
    return Error{EAGAIN, "incomplete startup packet: need 8 bytes to read its header"};
  }
  MessageReader r(first.first(8));
  StartupHeader h;
  h.length = uint32_t(r.get_i32());
  h.code = r.get_i32();
  if (h.length < 8 || h.length > kMaxStartupPacket) {
    return violation("invalid length of startup packet: " + std::to_string(h.length) +
                     " bytes (allowed 8 to " + std::to_string(kMaxStartupPacket) + ")");
  }
  auto fixed = [&](StartupKind kind, size_t expected) -> Result<StartupHeader> {
    h.kind = kind;
    if (h.length != expected) {
      return violation("invalid length of " + std::string(to_string(kind)) + ": " +
                       std::to_string(h.length) + " bytes, expected " + std::to_string(expected));
    }
    return h;
  };
  switch (h.code) {
    case kCancelRequestCode:
      return fixed(StartupKind::CancelRequest, kCancelRequestLength);
    case kSslRequestCode:
      return fixed(StartupKind::SslRequest, kSslRequestLength);
    case kGssEncRequestCode:
      return fixed(StartupKind::GssEncRequest, kGssEncRequestLength);
    default:
      break;
  }
  if (protocol_major(h.code) != 3) return unsupported_protocol(h.code);
  h.kind = StartupKind::Startup;
  return h;
}

Result<StartupPacket> parse_startup_packet(std::span<const uint8_t> packet) {
  if (packet.size() < 8) {
    return violation("invalid length of startup packet: " + std::to_string(packet.size()) +
                     " bytes (allowed 8 to " + std::to_string(kMaxStartupPacket) + ")");
  }
  auto header = peek_startup_header(packet);
  if (!header) return header.error();
  if (packet.size() != header->length) {
    return violation("invalid startup packet: length field says " + std::to_string(header->length) +
                     " bytes but the packet has " + std::to_string(packet.size()));
  }

  StartupPacket p;
  p.kind = header->kind;
  MessageReader r(packet.subspan(8));
  switch (p.kind) {
    case StartupKind::SslRequest:
    case StartupKind::GssEncRequest:
      return p;
    case StartupKind::CancelRequest:
      p.cancel_process_id = r.get_i32();
      p.cancel_secret_key = r.get_i32();
      return p;  // the length was checked to be exactly 16
    case StartupKind::Startup:
      break;
  }

  p.protocol = header->code;
  p.major = protocol_major(p.protocol);
  p.minor = protocol_minor(p.protocol);
  if (Status s = parse_parameters(r, p); !s) return s.error();

  if (const std::string* user = p.find("user"); user && !user->empty()) {
    p.user = *user;
  } else {
    return violation("no PostgreSQL user name specified in startup packet");
  }
  const std::string* database = p.find("database");
  p.database = (database && !database->empty()) ? *database : p.user;
  return p;
}

}  // namespace helios::pg
