#include "pg/md5.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cerrno>

namespace helios::pg {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// "md5" + lowercase hex of MD5(a || b).
std::string md5_hex(std::string_view a, std::string_view b) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_md5(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, a.data(), a.size()) == 1 &&
            EVP_DigestUpdate(ctx, b.data(), b.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, digest, &len) == 1 && len == 16;
  EVP_MD_CTX_free(ctx);
  if (!ok) return {};  // never a valid hash: comparisons against it fail
  std::string out = "md5";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

}  // namespace

bool is_md5_hash(std::string_view text) {
  if (text.size() != kMd5PasswordLen || text.substr(0, 3) != "md5") return false;
  for (char c : text.substr(3)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string md5_password_hash(std::string_view password, std::string_view user) {
  return md5_hex(password, user);
}

Result<std::string> md5_salted(std::string_view stored_md5_hash, Md5Salt salt) {
  if (!is_md5_hash(stored_md5_hash)) {
    return Error::invalid("not an md5 password hash (expected \"md5\" + 32 hex digits)");
  }
  std::string out = md5_hex(stored_md5_hash.substr(3),
                            std::string_view(reinterpret_cast<const char*>(salt.data()), 4));
  if (out.empty()) return Error{EIO, "OpenSSL MD5 failed"};
  return out;
}

bool verify_md5_response(std::string_view stored_md5_hash, Md5Salt salt,
                         std::string_view response) {
  auto expected = md5_salted(stored_md5_hash, salt);
  if (!expected || expected->size() != response.size()) return false;
  return CRYPTO_memcmp(expected->data(), response.data(), response.size()) == 0;
}

Result<Md5Salt> random_md5_salt() {
  Md5Salt salt;
  if (RAND_bytes(salt.data(), int(salt.size())) != 1)
    return Error{EIO, "OpenSSL RAND_bytes failed"};
  return salt;
}

}  // namespace helios::pg
