#include "pg/scram_secret.h"

#include <openssl/evp.h>

#include <charconv>

#include "pg/base64.h"

namespace helios::pg {

namespace {

Error bad_secret(std::string_view why) {
  return Error::invalid("invalid SCRAM-SHA-256 secret: " + std::string(why));
}

bool decode_key(std::string_view b64, ScramKey& out) {
  auto raw = base64_decode(b64);
  if (!raw || raw->size() != out.size()) return false;
  std::copy(raw->begin(), raw->end(), out.begin());
  return true;
}

ScramKey digest(std::string_view a, std::string_view b, std::string_view c) {
  ScramKey out{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
  for (std::string_view part : {a, b, c}) {
    ok = ok && EVP_DigestUpdate(ctx, part.data(), part.size()) == 1;
  }
  unsigned int len = 0;
  ok = ok && EVP_DigestFinal_ex(ctx, out.data(), &len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) out.fill(0xff);  // still matches no password: StoredKey is SHA-256 of a ClientKey
  return out;
}

}  // namespace

bool looks_like_scram_secret(std::string_view text) {
  return text.substr(0, kScramSha256.size() + 1) == "SCRAM-SHA-256$";
}

Result<ScramSecret> parse_scram_secret(std::string_view text) {
  if (!looks_like_scram_secret(text)) return bad_secret("does not start with \"SCRAM-SHA-256$\"");
  std::string_view rest = text.substr(kScramSha256.size() + 1);
  // <iterations>:<salt>$<stored>:<server>
  const size_t colon1 = rest.find(':');
  const size_t dollar = rest.find('$');
  if (colon1 == std::string_view::npos || dollar == std::string_view::npos || dollar < colon1) {
    return bad_secret("expected <iterations>:<salt>$<StoredKey>:<ServerKey>");
  }
  const std::string_view iter_text = rest.substr(0, colon1);
  const std::string_view salt_text = rest.substr(colon1 + 1, dollar - colon1 - 1);
  const std::string_view keys = rest.substr(dollar + 1);
  const size_t colon2 = keys.find(':');
  if (colon2 == std::string_view::npos) return bad_secret("expected <StoredKey>:<ServerKey>");
  const std::string_view stored_text = keys.substr(0, colon2);
  const std::string_view server_text = keys.substr(colon2 + 1);

  ScramSecret s;
  const auto [end, ec] =
      std::from_chars(iter_text.data(), iter_text.data() + iter_text.size(), s.iterations);
  if (iter_text.empty() || ec != std::errc() || end != iter_text.data() + iter_text.size() ||
      s.iterations <= 0) {
    return bad_secret("iteration count is not a positive integer");
  }
  auto salt = base64_decode(salt_text);
  if (!salt || salt->empty()) return bad_secret("salt is not valid base64");
  s.salt = std::move(*salt);
  if (!decode_key(stored_text, s.stored_key)) {
    return bad_secret("StoredKey is not 32 bytes of base64");
  }
  if (!decode_key(server_text, s.server_key)) {
    return bad_secret("ServerKey is not 32 bytes of base64");
  }
  return s;
}

std::string scram_prepare_password(std::string_view password) {
  // See the header: pure ASCII and unpreparable input are used as-is by PostgreSQL too; other
  // non-ASCII input is used as-is here (documented difference).
  return std::string(password);
}

Result<ScramSecret> make_scram_secret(std::string_view password, std::string_view salt,
                                      int iterations) {
  if (salt.empty()) return Error::invalid("SCRAM salt must not be empty");
  auto salted = scram_crypto::salted_password(scram_prepare_password(password), salt, iterations);
  if (!salted) return salted.error();
  auto ck = scram_crypto::client_key(*salted);
  if (!ck) return ck.error();
  auto sk = scram_crypto::server_key(*salted);
  if (!sk) return sk.error();
  ScramSecret s;
  s.iterations = iterations;
  s.salt = std::string(salt);
  s.stored_key = scram_crypto::sha256(*ck);
  s.server_key = *sk;
  return s;
}

Result<ScramSecret> make_scram_secret(std::string_view password) {
  auto salt = scram_crypto::random_bytes(kScramDefaultSaltLen);
  if (!salt) return salt.error();
  return make_scram_secret(password, *salt, kScramDefaultIterations);
}

std::string format_scram_secret(const ScramSecret& secret) {
  std::string out(kScramSha256);
  out += '$';
  out += std::to_string(secret.iterations);
  out += ':';
  out += base64_encode(secret.salt);
  out += '$';
  out += base64_encode(secret.stored_key);
  out += ':';
  out += base64_encode(secret.server_key);
  return out;
}

ScramSecret make_mock_scram_secret(std::string_view user, std::string_view mock_key) {
  ScramSecret s;
  s.iterations = kScramDefaultIterations;
  const ScramKey salt = digest("salt", mock_key, user);
  s.salt.assign(reinterpret_cast<const char*>(salt.data()), kScramDefaultSaltLen);
  s.stored_key = digest("stored", mock_key, user);
  s.server_key = digest("server", mock_key, user);
  return s;
}

}  // namespace helios::pg
