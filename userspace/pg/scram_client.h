// SCRAM-SHA-256 client side (RFC 5802 / RFC 7677): the proxy logging into PostgreSQL. No I/O.
//
//   auto c = ScramClient::with_password(pw);            // or with_keys(...)
//   auto first = c.client_first();                      // SASLInitialResponse data
//   auto final = c.server_first(sasl_continue_payload); // SASLResponse data
//   Status ok = c.server_final(sasl_final_payload);     // verifies the ServerSignature
//
// Two ways to hold the credential:
//  - with_password: SaltedPassword is computed with PBKDF2 from the server's salt and iterations.
//  - with_keys: {ClientKey, ServerKey} recovered by a ScramServer (or fetched earlier). PBKDF2 is
//    skipped. If the keys' salt/iterations are given, the server's must match (otherwise the
//    password changed since the keys were made: error kScramStaleKeys). Without a ServerKey the
//    server's signature CANNOT be verified: server_final() then accepts any well-formed "v=",
//    and server_verified() stays false so the caller can tell (and log or refuse).
// Error codes: EPROTO malformed/out of order; EACCES the server refused ("e=") or its signature
// is wrong; kScramStaleKeys as above.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "pg/scram_secret.h"

namespace helios::pg {

class ScramServer;

constexpr int kScramStaleKeys = ESTALE;

struct ScramClientKeys {
  ScramKey client_key{};
  std::optional<ScramKey> server_key;  // absent: the server's signature is not verified
  std::optional<std::string> salt;     // raw; when set, must equal the server's
  std::optional<int> iterations;       // when set, must equal the server's
};

class ScramClient {
 public:
  enum class State { Initial, WaitServerFirst, WaitServerFinal, Succeeded, Failed };

  // `client_nonce` is for tests (RFC vectors); empty means 18 random bytes, base64-encoded.
  static ScramClient with_password(std::string_view password, std::string client_nonce = {});
  static ScramClient with_keys(ScramClientKeys keys, std::string client_nonce = {});
  // Keys that log in as the user a ScramServer just verified: its recovered ClientKey plus the
  // secret's ServerKey, salt and iterations.
  static ScramClient from_verified_server(const ScramServer& server, std::string client_nonce = {});

  // The "n=" user name (PostgreSQL ignores it and uses the startup user; libpq sends "").
  void set_username(std::string_view user) { username_ = std::string(user); }

  // client-first-message "n,,n=<user>,r=<nonce>".
  Result<std::string> client_first();
  // server-first-message -> client-final-message (with the ClientProof).
  Result<std::string> server_first(std::string_view message);
  // server-final-message: "v=<ServerSignature>" (verified when a ServerKey is known) or "e=...".
  Status server_final(std::string_view message);

  State state() const { return state_; }
  bool succeeded() const { return state_ == State::Succeeded; }
  // True once server_final() checked the ServerSignature against a known ServerKey.
  bool server_verified() const { return server_verified_; }
  bool can_verify_server() const { return password_.has_value() || keys_.server_key.has_value(); }

 private:
  ScramClient() = default;
  Error fail(Error e);

  State state_ = State::Initial;
  std::optional<std::string> password_;
  ScramClientKeys keys_;
  std::string username_;
  std::string client_nonce_;
  std::string client_first_bare_;
  std::string auth_message_;
  std::optional<ScramKey> server_key_;  // the one to verify with, once known
  bool server_verified_ = false;
};

}  // namespace helios::pg
