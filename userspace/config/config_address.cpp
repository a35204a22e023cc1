// Address syntax in the config: "host:port", "[v6]:port", IP literals and CIDR prefixes.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <charconv>

#include "config/config_reader.h"

namespace helios::config {
namespace {

bool parse_port(std::string_view text, uint16_t& out) {
  unsigned v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || v == 0 || v > 65535) return false;
  out = static_cast<uint16_t>(v);
  return true;
}

bool is_ipv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool is_ipv6(const std::string& s) {
  in6_addr a{};
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

bool is_host_name(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return s.front() != '-' && s.front() != '.';
}

}  // namespace

bool is_ip_literal(std::string_view host) {
  const std::string s(host);
  return is_ipv4(s) || is_ipv6(s);
}

Result<HostPort> parse_host_port(std::string_view text, bool ip_literal_only) {
  const std::string shape =
      "expected \"host:port\" (IPv6 as \"[::1]:5432\"), got \"" + std::string(text) + "\"";
  HostPort out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Error::invalid(shape);
    }
    out.host = std::string(text.substr(1, close - 1));
    if (!is_ipv6(out.host)) {
      return Error::invalid("\"" + out.host + "\" in brackets is not an IPv6 address");
    }
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return Error::invalid(shape);
    out.host = std::string(text.substr(0, colon));
    if (out.host.find(':') != std::string::npos) {
      return Error::invalid("IPv6 addresses need brackets: \"[" + out.host +
                            "]:" + std::string(text.substr(colon + 1)) + "\"");
    }
    if (ip_literal_only ? !is_ipv4(out.host) : !(is_ipv4(out.host) || is_host_name(out.host))) {
      return Error::invalid(ip_literal_only
                                ? "\"" + out.host + "\" is not an IP address"
                                : "\"" + out.host + "\" is not an IP address or host name");
    }
    port_text = text.substr(colon + 1);
  }
  if (!parse_port(port_text, out.port)) {
    return Error::invalid("port must be between 1 and 65535, got \"" + std::string(port_text) +
                          "\"");
  }
  return out;
}

Result<Cidr> parse_cidr(std::string_view text) {
  const std::string shape =
      "expected a CIDR prefix like \"10.1.0.0/16\" or \"2001:db8::/32\", "
      "got \"" +
      std::string(text) + "\"";
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return Error::invalid(shape);
  const std::string addr(text.substr(0, slash));
  const std::string_view len_text = text.substr(slash + 1);
  Cidr out;
  if (inet_pton(AF_INET, addr.c_str(), out.addr.data()) == 1) {
    out.family = AF_INET;
  } else if (inet_pton(AF_INET6, addr.c_str(), out.addr.data()) == 1) {
    out.family = AF_INET6;
  } else {
    return Error::invalid(shape);
  }
  const unsigned max_len = out.family == AF_INET ? 32 : 128;
  unsigned len = 0;
  auto [ptr, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (len_text.empty() || ec != std::errc() || ptr != len_text.data() + len_text.size() ||
      len > max_len) {
    return Error::invalid("prefix length in \"" + std::string(text) + "\" must be 0.." +
                          std::to_string(max_len));
  }
  out.prefix_len = static_cast<uint8_t>(len);
  Cidr masked = out;
  const unsigned bytes = max_len / 8;
  for (unsigned i = 0; i < bytes; ++i) {
    const unsigned bit0 = i * 8;
    uint8_t mask = 0;
    if (len >= bit0 + 8) {
      mask = 0xff;
    } else if (len > bit0) {
      mask = static_cast<uint8_t>(0xff << (8 - (len - bit0)));
    }
    masked.addr[i] = out.addr[i] & mask;
  }
  if (masked.addr != out.addr) {
    return Error::invalid("\"" + std::string(text) + "\" has host bits set (did you mean \"" +
                          masked.to_string() + "\"?)");
  }
  return out;
}

std::string HostPort::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string Cidr::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family != AF_INET && family != AF_INET6) return "";
  inet_ntop(family, addr.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(prefix_len);
}

}  // namespace helios::config
