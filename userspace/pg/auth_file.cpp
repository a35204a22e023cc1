#include "pg/auth_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common/unique_fd.h"

namespace helios::pg {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// Cursor over one line of the file.
struct LineParser {
  std::string_view line;
  size_t pos = 0;

  void skip_space() {
    while (pos < line.size() && is_space(line[pos])) ++pos;
  }
  bool at_comment_or_end() const {
    return pos >= line.size() || line[pos] == ';' || line[pos] == '#';
  }
  // A quoted field at `pos`; "" inside is one quote. On error returns false and sets `why`.
  bool quoted(std::string& out, std::string_view name, std::string& why) {
    if (pos >= line.size() || line[pos] != '"') {
      why = "expected a quoted " + std::string(name);
      return false;
    }
    ++pos;
    out.clear();
    while (pos < line.size()) {
      const char c = line[pos++];
      if (c != '"') {
        out += c;
      } else if (pos < line.size() && line[pos] == '"') {
        out += '"';
        ++pos;
      } else {
        return true;
      }
    }
    why = "unterminated quoted " + std::string(name);
    return false;
  }
};

}  // namespace

const Credential* AuthFile::lookup(std::string_view user) const {
  auto it = users_.find(user);
  return it == users_.end() ? nullptr : &it->second;
}

Result<AuthFile> parse_auth_file(std::string_view text, std::string_view source_name) {
  AuthFile file;
  file.source_ = std::string(source_name);
  size_t line_no = 0;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t nl = text.find('\n', start);
    const size_t end = nl == std::string_view::npos ? text.size() : nl;
    LineParser p{text.substr(start, end - start)};
    ++line_no;
    start = end + 1;
    auto error = [&](const std::string& what) {
      return Error::invalid(file.source_ + ":" + std::to_string(line_no) + ": " + what);
    };

    p.skip_space();
    if (p.at_comment_or_end()) {
      if (nl == std::string_view::npos) break;
      continue;
    }
    std::string user, secret, why;
    if (!p.quoted(user, "user name", why)) return error(why);
    p.skip_space();
    if (!p.quoted(secret, "password", why)) return error(why);
    while (true) {  // further quoted fields are ignored; then only a comment may follow
      p.skip_space();
      if (p.at_comment_or_end()) break;
      std::string ignored;
      if (!p.quoted(ignored, "field", why)) {
        return error("unexpected text after the password (quote it or start a comment)");
      }
    }
    if (user.empty()) return error("empty user name");
    if (secret.empty()) return error("user \"" + user + "\": empty password");
    auto cred = credential_from_stored(secret);
    if (!cred) return error("user \"" + user + "\": " + cred.error().message);
    if (!file.users_.emplace(user, std::move(*cred)).second) {
      return error("duplicate user \"" + user + "\"");
    }
    if (nl == std::string_view::npos) break;
  }
  return file;
}

Result<AuthFile> load_auth_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno("cannot open auth file " + path);
  std::string text;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("cannot read auth file " + path);
    }
    if (n == 0) break;
    text.append(buf, size_t(n));
  }
  return parse_auth_file(text, path);
}

}  // namespace helios::pg
