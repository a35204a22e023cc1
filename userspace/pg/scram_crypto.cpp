#include "pg/scram_crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "pg/base64.h"

namespace helios::pg::scram_crypto {

namespace {
Error openssl_error(std::string_view what) {
  return Error{EIO, "OpenSSL " + std::string(what) + " failed"};
}
}  // namespace

std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string_view view_of(const ScramKey& k) {
  return {reinterpret_cast<const char*>(k.data()), k.size()};
}

Result<ScramKey> salted_password(std::string_view password, std::string_view salt, int iterations) {
  if (iterations <= 0) return Error::invalid("SCRAM iteration count must be positive");
  ScramKey out;
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), iterations, EVP_sha256(),
                        static_cast<int>(out.size()), out.data()) != 1) {
    return openssl_error("PKCS5_PBKDF2_HMAC");
  }
  return out;
}

Result<ScramKey> hmac(const ScramKey& key, std::string_view message) {
  ScramKey out;
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(),
           &len) == nullptr ||
      len != out.size()) {
    return openssl_error("HMAC-SHA-256");
  }
  return out;
}

ScramKey sha256(const ScramKey& data) {
  ScramKey out;
  SHA256(data.data(), data.size(), out.data());
  return out;
}

Result<ScramKey> client_key(const ScramKey& salted) {
  return hmac(salted, "Client Key");
}
Result<ScramKey> server_key(const ScramKey& salted) {
  return hmac(salted, "Server Key");
}

ScramKey xor_keys(const ScramKey& a, const ScramKey& b) {
  ScramKey out;
  for (size_t i = 0; i < out.size(); ++i) out[i] = a[i] ^ b[i];
  return out;
}

bool equal_constant_time(const ScramKey& a, const ScramKey& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<std::string> random_bytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return openssl_error("RAND_bytes");
  }
  return out;
}

Result<std::string> random_nonce(size_t n) {
  auto raw = random_bytes(n);
  if (!raw) return raw.error();
  return base64_encode(*raw);
}

}  // namespace helios::pg::scram_crypto
