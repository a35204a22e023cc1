// A SCRAM-SHA-256 verifier as PostgreSQL stores it in pg_authid.rolpassword:
//   SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "pg/scram_crypto.h"

namespace helios::pg {

inline constexpr std::string_view kScramSha256 = "SCRAM-SHA-256";
inline constexpr std::string_view kScramSha256Plus = "SCRAM-SHA-256-PLUS";
constexpr int kScramDefaultIterations = 4096;  // PostgreSQL's scram_iterations default
constexpr size_t kScramDefaultSaltLen = 16;    // PostgreSQL's SCRAM_DEFAULT_SALT_LEN

struct ScramSecret {
  int iterations = 0;
  std::string salt;  // raw bytes
  ScramKey stored_key{};
  ScramKey server_key{};
  bool operator==(const ScramSecret&) const = default;
};

// Parses PostgreSQL's stored form. Errors (EINVAL) say which part is wrong; the secret itself is
// never echoed into the message.
Result<ScramSecret> parse_scram_secret(std::string_view text);
// True when `text` starts like a SCRAM secret (whether or not the rest is valid).
bool looks_like_scram_secret(std::string_view text);

// The secret PostgreSQL would store for `password` with this salt and iteration count (the
// password goes through scram_prepare_password first, as PostgreSQL does). Fails only for
// iterations <= 0, an empty salt, or an OpenSSL failure.
Result<ScramSecret> make_scram_secret(std::string_view password, std::string_view salt,
                                      int iterations = kScramDefaultIterations);
// Same with a fresh random salt of kScramDefaultSaltLen bytes.
Result<ScramSecret> make_scram_secret(std::string_view password);

std::string format_scram_secret(const ScramSecret& secret);

// A secret no password matches, with a salt derived from (user, mock_key) so repeated attempts
// for one unknown user see the same salt: lets the proxy run a full SCRAM exchange for a user
// that does not exist without revealing that (as PostgreSQL's "mock authentication" does).
ScramSecret make_mock_scram_secret(std::string_view user, std::string_view mock_key);

// SASLprep policy (RFC 4013), as applied before PBKDF2 on the client and in make_scram_secret.
// PostgreSQL's pg_saslprep() leaves pure-ASCII passwords unchanged (identical here), and for
// anything it cannot prepare (invalid UTF-8, prohibited characters) it uses the raw bytes
// (identical here as well). For other non-ASCII passwords PostgreSQL applies NFKC normalization
// and the RFC 3454 mapping tables; this codec does not carry Unicode tables and uses the raw
// bytes. The result agrees with PostgreSQL whenever the password is already in NFKC form and has
// no "mapped to nothing" (e.g. U+00AD soft hyphen) or non-ASCII space (e.g. U+00A0) characters,
// which covers typed passwords in practice; a password that differs is rejected by PostgreSQL
// with "password authentication failed", never accepted wrongly. This only matters where the
// proxy knows a plaintext password (auth file, backend password); verifying clients against a
// stored secret never runs it.
std::string scram_prepare_password(std::string_view password);

}  // namespace helios::pg
