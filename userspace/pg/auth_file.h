// PgBouncer-style auth file ("userlist.txt"): one user per line,
//     "user name" "secret"
// where the secret is a plaintext password, an md5 hash ("md5" + 32 hex) or a SCRAM-SHA-256
// secret as PostgreSQL stores it. Inside quotes, "" stands for one '"'. Blank lines and lines
// starting with ';' or '#' are ignored; after the two fields a line may carry more quoted fields
// (ignored, as PgBouncer does) and a ';' or '#' comment, nothing else.
// Refused, with "<source>:<line>: <what is wrong>": a missing or unterminated field, other text
// on the line, an empty user name, an empty password, an invalid SCRAM secret, a duplicate user.
// Error messages never contain the secret.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "common/result.h"
#include "pg/credential.h"

namespace helios::pg {

class AuthFile {
 public:
  // nullptr when the user is not listed. User names are case-sensitive, as in PostgreSQL.
  const Credential* lookup(std::string_view user) const;
  size_t size() const { return users_.size(); }
  const std::string& source() const { return source_; }
  const std::map<std::string, Credential, std::less<>>& users() const { return users_; }

 private:
  friend Result<AuthFile> parse_auth_file(std::string_view text, std::string_view source_name);
  std::string source_;
  std::map<std::string, Credential, std::less<>> users_;
};

// `source_name` is used in error messages (usually the path).
Result<AuthFile> parse_auth_file(std::string_view text, std::string_view source_name);
// Reads and parses a file; an unreadable file is an error carrying errno and the path.
Result<AuthFile> load_auth_file(const std::string& path);

}  // namespace helios::pg
