// SCRAM-SHA-256 building blocks (RFC 5802 section 3) over OpenSSL: PBKDF2, HMAC, SHA-256, random
// bytes and constant-time comparison. Used by scram_secret, scram_server and scram_client.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"

namespace helios::pg {

constexpr size_t kScramKeyLen = 32;  // SHA-256 output
using ScramKey = std::array<uint8_t, kScramKeyLen>;

namespace scram_crypto {

std::span<const uint8_t> bytes_of(std::string_view s);
std::string_view view_of(const ScramKey& k);

// SaltedPassword := Hi(password, salt, i) = PBKDF2-HMAC-SHA-256.
Result<ScramKey> salted_password(std::string_view password, std::string_view salt, int iterations);
Result<ScramKey> hmac(const ScramKey& key, std::string_view message);
ScramKey sha256(const ScramKey& data);
// ClientKey := HMAC(SaltedPassword, "Client Key"); ServerKey := HMAC(SaltedPassword, "Server Key").
Result<ScramKey> client_key(const ScramKey& salted);
Result<ScramKey> server_key(const ScramKey& salted);
ScramKey xor_keys(const ScramKey& a, const ScramKey& b);
bool equal_constant_time(const ScramKey& a, const ScramKey& b);
// `n` random bytes from OpenSSL's CSPRNG, base64-encoded (a SCRAM nonce: printable, no ',').
Result<std::string> random_nonce(size_t n = 18);
Result<std::string> random_bytes(size_t n);

}  // namespace scram_crypto
}  // namespace helios::pg
