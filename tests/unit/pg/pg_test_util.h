// Helpers for the pg codec tests: cut a byte stream into typed messages (a test oracle only; the
// proxy's streaming framer lives elsewhere) and byte/packet conversions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace helios::pg::test {

struct Framed {
  char type = 0;
  std::string body;
};

inline uint32_t be32(std::string_view b, size_t at) {
  return uint32_t(uint8_t(b[at])) << 24 | uint32_t(uint8_t(b[at + 1])) << 16 |
         uint32_t(uint8_t(b[at + 2])) << 8 | uint32_t(uint8_t(b[at + 3]));
}

// Takes every complete message off the front of `buf`; returns how many bytes were consumed.
inline size_t take_messages(std::string_view buf, std::vector<Framed>& out) {
  size_t pos = 0;
  while (buf.size() - pos >= 5) {
    const uint32_t len = be32(buf, pos + 1);
    if (len < 4 || buf.size() - pos - 1 < len) break;
    out.push_back({buf[pos], std::string(buf.substr(pos + 5, len - 4))});
    pos += 1 + len;
  }
  return pos;
}

// The single message in `buf` (which must hold exactly one).
inline Framed only_message(std::string_view buf) {
  std::vector<Framed> v;
  const size_t used = take_messages(buf, v);
  if (v.size() != 1 || used != buf.size()) return {};
  return v[0];
}

inline std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

inline std::string be32_bytes(uint32_t v) {
  return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

}  // namespace helios::pg::test
