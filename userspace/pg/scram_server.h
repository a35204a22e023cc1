// SCRAM-SHA-256 server side (RFC 5802 / RFC 7677): the proxy verifying a client against a stored
// ScramSecret. No I/O: feed it the SASL data of the client's messages, send back what it returns
// (in AuthenticationSASLContinue / AuthenticationSASLFinal).
//
//   ScramServer s(secret);
//   auto first = s.client_first(initial_response.data);   // -> server-first-message
//   auto final = s.client_final(sasl_response_body);       // -> server-final-message
//   s.client_key();                                        // recovered ClientKey
//
// Error codes (Error::code) and the SQLSTATE to send with them:
//   kScramWrongPassword (EACCES)  wrong password / bad proof          -> 28P01 invalid_password
//   kScramUnsupported  (ENOTSUP) channel binding, authzid, m= ext.    -> 0A000 (or 08P01)
//   kScramMalformed    (EPROTO)  anything malformed or out of order   -> 08P01 protocol_violation
// Any error leaves the exchange in State::Failed; every later call fails.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>

#include "common/result.h"
#include "pg/scram_secret.h"

namespace helios::pg {

constexpr int kScramWrongPassword = EACCES;
constexpr int kScramUnsupported = ENOTSUP;
constexpr int kScramMalformed = EPROTO;

// The SQLSTATE for an error from ScramServer (see the table above).
std::string_view scram_error_sqlstate(const Error& e);

// True for the one mechanism the proxy offers and accepts ("SCRAM-SHA-256").
bool is_supported_sasl_mechanism(std::string_view mechanism);

class ScramServer {
 public:
  enum class State { WaitClientFirst, WaitClientFinal, Succeeded, Failed };

  // `server_nonce` is for tests (RFC vectors); empty means 18 random bytes, base64-encoded.
  explicit ScramServer(ScramSecret secret, std::string server_nonce = {});

  // client-first-message -> server-first-message.
  Result<std::string> client_first(std::string_view message);
  // client-final-message -> server-final-message, after verifying the ClientProof.
  Result<std::string> client_final(std::string_view message);

  State state() const { return state_; }
  bool succeeded() const { return state_ == State::Succeeded; }
  // After success: ClientProof XOR HMAC(StoredKey, AuthMessage). With the secret's ServerKey it
  // lets a ScramClient log into PostgreSQL as this user without the password. All zero before.
  const ScramKey& client_key() const { return client_key_; }
  const ScramSecret& secret() const { return secret_; }

 private:
  Error fail(Error e);

  ScramSecret secret_;
  State state_ = State::WaitClientFirst;
  std::string server_nonce_;
  std::string gs2_header_;         // e.g. "n,,"
  std::string client_first_bare_;  // "n=...,r=..."
  std::string server_first_;
  std::string nonce_;  // client nonce + server nonce
  ScramKey client_key_{};
};

}  // namespace helios::pg
