#include "pg/scram_message.h"

#include <cerrno>
#include <string>

namespace helios::pg {

Error scram_malformed(std::string_view what, std::string_view why) {
  return Error{EPROTO, "malformed SCRAM " + std::string(what) + ": " + std::string(why)};
}

Result<std::vector<ScramAttribute>> split_scram_attributes(std::string_view msg,
                                                           std::string_view what) {
  std::vector<ScramAttribute> attrs;
  if (msg.empty()) return scram_malformed(what, "empty message");
  size_t start = 0;
  while (true) {
    const size_t comma = msg.find(',', start);
    const std::string_view part =
        msg.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    const char c = part.empty() ? 0 : part[0];
    if (part.size() < 2 || part[1] != '=' || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
      return scram_malformed(what, "expected attribute of the form x=value");
    }
    attrs.push_back({c, part.substr(2)});
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return attrs;
}

bool is_valid_scram_nonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

std::string escape_scram_username(std::string_view user) {
  std::string out;
  out.reserve(user.size());
  for (char c : user) {
    if (c == '=') {
      out += "=3D";
    } else if (c == ',') {
      out += "=2C";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace helios::pg
