// What the proxy knows about a user's password: the plaintext, PostgreSQL's md5 hash, or a
// SCRAM-SHA-256 secret. Shared by the auth file (auth_file.h) and auth_query lookups.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "common/result.h"
#include "pg/scram_secret.h"

namespace helios::pg {

struct PlainCredential {
  std::string password;
  bool operator==(const PlainCredential&) const = default;
};
struct Md5Credential {
  std::string hash;  // "md5" + 32 hex digits
  bool operator==(const Md5Credential&) const = default;
};
struct ScramCredential {
  ScramSecret secret;
  bool operator==(const ScramCredential&) const = default;
};

// What each kind allows (the proxy never needs the plaintext except for PlainCredential):
//                      client auth by the proxy          proxy's login to PostgreSQL
//   PlainCredential    SCRAM (make_scram_secret), md5,   SCRAM, md5, cleartext
//                      cleartext
//   Md5Credential      md5 only (verify_md5_response)    md5 only (md5_salted on the hash)
//   ScramCredential    SCRAM only (ScramServer)          SCRAM, with the ClientKey a ScramServer
//                                                        recovered from the client's proof
//                                                        (ScramClient::from_verified_server)
using Credential = std::variant<PlainCredential, Md5Credential, ScramCredential>;

// Classifies a stored password the way PostgreSQL does (pg_authid.rolpassword / pg_shadow.passwd
// / a userlist entry): a SCRAM-SHA-256 secret, an md5 hash ("md5" + 32 lowercase hex), or else a
// plaintext password. Differences from PostgreSQL, on purpose: a string that starts with
// "SCRAM-SHA-256$" but does not parse is an error (PostgreSQL would silently treat it as a
// plaintext password), and an empty string is an error (PostgreSQL never stores one).
Result<Credential> credential_from_stored(std::string_view stored_password);

// "plain", "md5" or "scram-sha-256" (for logs and admin output; never the secret itself).
std::string_view credential_kind(const Credential& c);

}  // namespace helios::pg
