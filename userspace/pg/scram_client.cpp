#include "pg/scram_client.h"

#include <algorithm>
#include <charconv>

#include "pg/base64.h"
#include "pg/scram_message.h"
#include "pg/scram_server.h"

namespace helios::pg {

namespace {
constexpr std::string_view kServerFirst = "server-first-message";
constexpr std::string_view kServerFinal = "server-final-message";
constexpr std::string_view kGs2Header = "n,,";  // no channel binding, no authzid
}  // namespace

ScramClient ScramClient::with_password(std::string_view password, std::string client_nonce) {
  ScramClient c;
  c.password_ = scram_prepare_password(password);
  c.client_nonce_ = std::move(client_nonce);
  return c;
}

ScramClient ScramClient::with_keys(ScramClientKeys keys, std::string client_nonce) {
  ScramClient c;
  c.keys_ = std::move(keys);
  c.client_nonce_ = std::move(client_nonce);
  return c;
}

ScramClient ScramClient::from_verified_server(const ScramServer& server, std::string client_nonce) {
  ScramClientKeys keys;
  keys.client_key = server.client_key();
  keys.server_key = server.secret().server_key;
  keys.salt = server.secret().salt;
  keys.iterations = server.secret().iterations;
  return with_keys(std::move(keys), std::move(client_nonce));
}

Error ScramClient::fail(Error e) {
  state_ = State::Failed;
  return e;
}

Result<std::string> ScramClient::client_first() {
  if (state_ != State::Initial) {
    return fail(Error{EPROTO, "SCRAM client-first-message already sent"});
  }
  if (client_nonce_.empty()) {
    auto nonce = scram_crypto::random_nonce();
    if (!nonce) return fail(nonce.error());
    client_nonce_ = std::move(*nonce);
  }
  if (!is_valid_scram_nonce(client_nonce_)) {
    return fail(Error::invalid("invalid client nonce given to ScramClient"));
  }
  client_first_bare_ = "n=" + escape_scram_username(username_) + ",r=" + client_nonce_;
  state_ = State::WaitServerFirst;
  return std::string(kGs2Header) + client_first_bare_;
}

Result<std::string> ScramClient::server_first(std::string_view msg) {
  if (state_ != State::WaitServerFirst) {
    return fail(scram_malformed(kServerFirst, "unexpected at this point of the exchange"));
  }
  auto attrs = split_scram_attributes(msg, kServerFirst);
  if (!attrs) return fail(attrs.error());
  const auto& a = *attrs;
  if (a[0].name == 'm') {
    return fail(Error{ENOTSUP, "server requires an unsupported SCRAM extension"});
  }
  if (a.size() < 3 || a[0].name != 'r' || a[1].name != 's' || a[2].name != 'i') {
    return fail(scram_malformed(kServerFirst, "expected r=...,s=...,i=..."));
  }
  const std::string_view nonce = a[0].value;
  if (!is_valid_scram_nonce(nonce) || nonce.size() <= client_nonce_.size() ||
      nonce.substr(0, client_nonce_.size()) != client_nonce_) {
    return fail(scram_malformed(kServerFirst, "server nonce does not extend the client nonce"));
  }
  auto salt = base64_decode(a[1].value);
  if (!salt || salt->empty()) return fail(scram_malformed(kServerFirst, "invalid salt"));
  int iterations = 0;
  const std::string_view it = a[2].value;
  const auto [end, ec] = std::from_chars(it.data(), it.data() + it.size(), iterations);
  if (it.empty() || ec != std::errc() || end != it.data() + it.size() || iterations <= 0) {
    return fail(scram_malformed(kServerFirst, "invalid iteration count"));
  }

  ScramKey client_key;
  if (password_) {
    auto salted = scram_crypto::salted_password(*password_, *salt, iterations);
    if (!salted) return fail(salted.error());
    auto ck = scram_crypto::client_key(*salted);
    auto sk = scram_crypto::server_key(*salted);
    if (!ck) return fail(ck.error());
    if (!sk) return fail(sk.error());
    client_key = *ck;
    server_key_ = *sk;
  } else {
    if ((keys_.salt && *keys_.salt != *salt) ||
        (keys_.iterations && *keys_.iterations != iterations)) {
      return fail(Error{kScramStaleKeys,
                        "server's SCRAM salt or iteration count differs from the secret the "
                        "keys came from (password changed?)"});
    }
    client_key = keys_.client_key;
    server_key_ = keys_.server_key;
  }

  const std::string without_proof = "c=" + base64_encode(kGs2Header) + ",r=" + std::string(nonce);
  auth_message_ = client_first_bare_ + "," + std::string(msg) + "," + without_proof;
  auto client_signature = scram_crypto::hmac(scram_crypto::sha256(client_key), auth_message_);
  if (!client_signature) return fail(client_signature.error());
  const ScramKey proof = scram_crypto::xor_keys(client_key, *client_signature);
  state_ = State::WaitServerFinal;
  return without_proof + ",p=" + base64_encode(proof);
}

Status ScramClient::server_final(std::string_view msg) {
  if (state_ != State::WaitServerFinal) {
    return fail(scram_malformed(kServerFinal, "unexpected at this point of the exchange"));
  }
  auto attrs = split_scram_attributes(msg, kServerFinal);
  if (!attrs) return fail(attrs.error());
  const auto& a = *attrs;
  if (a[0].name == 'e') {
    return fail(Error{EACCES, "server rejected SCRAM authentication: " + std::string(a[0].value)});
  }
  if (a[0].name != 'v') return fail(scram_malformed(kServerFinal, "expected v=..."));
  auto signature = base64_decode(a[0].value);
  if (!signature || signature->size() != kScramKeyLen) {
    return fail(scram_malformed(kServerFinal, "ServerSignature is not 32 bytes of base64"));
  }
  if (server_key_) {
    auto expected = scram_crypto::hmac(*server_key_, auth_message_);
    if (!expected) return fail(expected.error());
    ScramKey got;
    std::copy(signature->begin(), signature->end(), got.begin());
    if (!scram_crypto::equal_constant_time(got, *expected)) {
      return fail(Error{EACCES,
                        "invalid SCRAM server signature: the server does not know the "
                        "password"});
    }
    server_verified_ = true;
  }
  state_ = State::Succeeded;
  return {};
}

}  // namespace helios::pg
