#include "pg/scram_server.h"

#include <algorithm>

#include "pg/base64.h"
#include "pg/scram_message.h"
#include "pg/sqlstate.h"

namespace helios::pg {

namespace {
constexpr std::string_view kClientFirst = "client-first-message";
constexpr std::string_view kClientFinal = "client-final-message";
}  // namespace

std::string_view scram_error_sqlstate(const Error& e) {
  switch (e.code) {
    case kScramWrongPassword:
      return sqlstate::kInvalidPassword;
    case kScramUnsupported:
      return sqlstate::kFeatureNotSupported;
    default:
      return sqlstate::kProtocolViolation;
  }
}

bool is_supported_sasl_mechanism(std::string_view mechanism) {
  return mechanism == kScramSha256;
}

ScramServer::ScramServer(ScramSecret secret, std::string server_nonce)
    : secret_(std::move(secret)), server_nonce_(std::move(server_nonce)) {}

Error ScramServer::fail(Error e) {
  state_ = State::Failed;
  client_key_.fill(0);
  return e;
}

Result<std::string> ScramServer::client_first(std::string_view msg) {
  if (state_ != State::WaitClientFirst) {
    return fail(scram_malformed(kClientFirst, "unexpected at this point of the exchange"));
  }
  // gs2-header: cbind-flag "," [authzid] ","
  size_t pos = 0;
  if (msg.substr(0, 2) == "n," || msg.substr(0, 2) == "y,") {
    pos = 2;
  } else if (msg.substr(0, 2) == "p=") {
    return fail(Error{kScramUnsupported,
                      "SCRAM channel binding (SCRAM-SHA-256-PLUS) is not supported by this "
                      "proxy; connect with channel_binding=disable or prefer"});
  } else {
    return fail(scram_malformed(kClientFirst, "unexpected channel-binding flag"));
  }
  if (msg.substr(pos, 2) == "a=") {
    return fail(Error{kScramUnsupported,
                      "client uses SCRAM authorization identity, but it is not supported"});
  }
  if (msg.substr(pos, 1) != ",") {
    return fail(scram_malformed(kClientFirst, "expected ',' after the channel-binding flag"));
  }
  ++pos;
  const std::string_view bare = msg.substr(pos);
  auto attrs = split_scram_attributes(bare, kClientFirst);
  if (!attrs) return fail(attrs.error());
  if ((*attrs)[0].name == 'm') {
    return fail(Error{kScramUnsupported, "client requires an unsupported SCRAM extension"});
  }
  // The user name ('n') is ignored: the user is the one from the startup packet, as in PostgreSQL.
  if (attrs->size() < 2 || (*attrs)[0].name != 'n' || (*attrs)[1].name != 'r') {
    return fail(scram_malformed(kClientFirst, "expected n=<user>,r=<nonce>"));
  }
  const std::string_view client_nonce = (*attrs)[1].value;
  if (!is_valid_scram_nonce(client_nonce)) {
    return fail(scram_malformed(kClientFirst, "invalid nonce"));
  }
  if (server_nonce_.empty()) {
    auto nonce = scram_crypto::random_nonce();
    if (!nonce) return fail(nonce.error());
    server_nonce_ = std::move(*nonce);
  }
  if (!is_valid_scram_nonce(server_nonce_)) {
    return fail(Error::invalid("invalid server nonce given to ScramServer"));
  }

  gs2_header_ = std::string(msg.substr(0, pos));
  client_first_bare_ = std::string(bare);
  nonce_ = std::string(client_nonce) + server_nonce_;
  server_first_ = "r=" + nonce_ + ",s=" + base64_encode(secret_.salt) +
                  ",i=" + std::to_string(secret_.iterations);
  state_ = State::WaitClientFinal;
  return server_first_;
}

Result<std::string> ScramServer::client_final(std::string_view msg) {
  if (state_ != State::WaitClientFinal) {
    return fail(scram_malformed(kClientFinal, "unexpected at this point of the exchange"));
  }
  auto attrs = split_scram_attributes(msg, kClientFinal);
  if (!attrs) return fail(attrs.error());
  const auto& a = *attrs;
  if (a.size() < 3 || a[0].name != 'c' || a[1].name != 'r' || a.back().name != 'p') {
    return fail(scram_malformed(kClientFinal, "expected c=...,r=...,p=..."));
  }
  auto binding = base64_decode(a[0].value);
  if (!binding || *binding != gs2_header_) {
    return fail(scram_malformed(kClientFinal, "channel-binding data does not match"));
  }
  if (a[1].value != nonce_) {
    return fail(scram_malformed(kClientFinal, "nonce does not match"));
  }
  auto proof_raw = base64_decode(a.back().value);
  if (!proof_raw || proof_raw->size() != kScramKeyLen) {
    return fail(scram_malformed(kClientFinal, "ClientProof is not 32 bytes of base64"));
  }
  ScramKey proof;
  std::copy(proof_raw->begin(), proof_raw->end(), proof.begin());

  const std::string_view without_proof = msg.substr(0, msg.size() - a.back().value.size() - 3);
  std::string auth_message = client_first_bare_;
  auth_message += ',';
  auth_message += server_first_;
  auth_message += ',';
  auth_message += without_proof;

  auto client_signature = scram_crypto::hmac(secret_.stored_key, auth_message);
  if (!client_signature) return fail(client_signature.error());
  const ScramKey client_key = scram_crypto::xor_keys(proof, *client_signature);
  if (!scram_crypto::equal_constant_time(scram_crypto::sha256(client_key), secret_.stored_key)) {
    return fail(Error{kScramWrongPassword, "password authentication failed (SCRAM proof)"});
  }
  auto server_signature = scram_crypto::hmac(secret_.server_key, auth_message);
  if (!server_signature) return fail(server_signature.error());

  client_key_ = client_key;
  state_ = State::Succeeded;
  return "v=" + base64_encode(*server_signature);
}

}  // namespace helios::pg
