// The SCRAM-SHA-256 server's parsing of what a client sends (client-first-message, then
// client-final-message) and the client's parsing of what a server sends (server-first,
// server-final), on arbitrary bytes. The first byte picks the side; the rest is split at the
// first '\n' into the two messages. Never crashes; an exchange that succeeds proved the password
// (the recovered ClientKey hashes to the StoredKey); a failure leaves the exchange Failed with
// one of the documented error codes.
#include <cstdint>
#include <string>
#include <string_view>

#include "pg/scram_client.h"
#include "pg/scram_server.h"

using namespace helios::pg;

namespace {

// RFC 7677's example: user "user", password "pencil", this salt and 4096 iterations, server
// nonce below. A seed with the RFC's client-final-message reaches the proof check and succeeds.
const ScramSecret& rfc_secret() {
  static const ScramSecret s = [] {
    auto r = make_scram_secret("pencil",
                               std::string("\x5b\x6d\x99\x68\x9d\x12\x35\x8e\xec\xa0"
                                           "\x4b\x14\x12\x36\xfa\x81",
                                           16),
                               4096);
    if (!r) __builtin_trap();
    return *r;
  }();
  return s;
}
constexpr std::string_view kServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kClientNonce = "rOprNGfwEbeRWgbNEkqO";

bool known_code(int code) {
  return code == kScramWrongPassword || code == kScramUnsupported || code == kScramMalformed ||
         code == kScramStaleKeys || code == EINVAL;
}

void server_side(std::string_view first, std::string_view final) {
  ScramServer server(rfc_secret(), std::string(kServerNonce));
  auto r1 = server.client_first(first);
  if (!r1) {
    if (server.state() != ScramServer::State::Failed || !known_code(r1.error().code))
      __builtin_trap();
    (void)scram_error_sqlstate(r1.error());
    return;
  }
  auto r2 = server.client_final(final);
  if (!r2) {
    if (server.state() != ScramServer::State::Failed || !known_code(r2.error().code))
      __builtin_trap();
    if (server.client_key() != ScramKey{}) __builtin_trap();
    (void)scram_error_sqlstate(r2.error());
    return;
  }
  if (!server.succeeded()) __builtin_trap();
  if (scram_crypto::sha256(server.client_key()) != rfc_secret().stored_key) __builtin_trap();
}

void client_side(std::string_view first, std::string_view final) {
  ScramClientKeys keys;
  keys.server_key = rfc_secret().server_key;
  ScramClient client = ScramClient::with_keys(keys, std::string(kClientNonce));
  client.set_username("user");
  if (!client.client_first()) __builtin_trap();
  auto r1 = client.server_first(first);
  if (!r1) {
    if (client.state() != ScramClient::State::Failed || !known_code(r1.error().code))
      __builtin_trap();
    return;
  }
  auto r2 = client.server_final(final);
  if (!r2) {
    if (client.state() != ScramClient::State::Failed || !known_code(r2.error().code))
      __builtin_trap();
    return;
  }
  if (!client.succeeded() || !client.server_verified()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t nl = rest.find('\n');
  std::string_view first = rest.substr(0, nl);
  std::string_view final = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
  if (data[0] & 1)
    client_side(first, final);
  else
    server_side(first, final);
  return 0;
}
