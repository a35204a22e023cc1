// SCRAM-SHA-256: RFC 7677 vectors, secrets made by a real PostgreSQL 15, round trips, wrong
// passwords, malformed messages, and logging in with a recovered ClientKey.
#include <doctest/doctest.h>

#include <random>

#include "pg/base64.h"
#include "pg/scram.h"

using namespace helios;
using namespace helios::pg;

namespace {

// RFC 7677 section 3: user "user", password "pencil".
constexpr std::string_view kRfcClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kRfcSalt = "W22ZaJ0SNY7soEsUEjb6gQ==";
constexpr std::string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

// Read from pg_authid.rolpassword of a PostgreSQL 15.18 after
//   SET password_encryption = 'scram-sha-256'; CREATE ROLE ... PASSWORD '...';
constexpr std::string_view kPgSecretHorse =  // 'correct horse battery staple'
    "SCRAM-SHA-256$4096:CCKKiLASDpVhWr0Ce7xRqg==$H9xkBRnZw1BJHWB0DKnPB+QCzyNWAXR1E6oqAwXIVwE=:"
    "GOG9BNRh0vlksJnl5Uk3jugXZsys1HfdT2MZ7ZB+NSw=";
constexpr std::string_view kPgSecretPencil =  // 'pencil'
    "SCRAM-SHA-256$4096:0Bb90vYNOkB2eQKhAjKhxA==$LwFOZzzvx/bOnGIu2iiLxlfyJ1PMrG/OvnG6TIr/VB0=:"
    "Dybx22jyt6CW8+CTaA/Alxbzr7X/KbR9x7Td6vtIPQI=";
constexpr std::string_view kPgSecretUtf8 =  // 'pässwörd' (UTF-8, precomposed: already NFKC)
    "SCRAM-SHA-256$4096:I34H3tSvCEKjlKo03ohV9w==$JaYJp8A/Rc1Zi1sFV6duvedfOh163YabF+dzLREFDVY=:"
    "zS+pUAVLw5vdFgZytTFmK7wySDpfQhzfHJfAJ5V7QO0=";
constexpr std::string_view kPgSecretNbsp =  // E'a\u00A0b': SASLprep maps U+00A0 to ' '
    "SCRAM-SHA-256$4096:jARCc2KjSWsb8Xpdj0UVvg==$HoZxZFZY/u0dstXrm/oUiB8ORnaQMYuiMXWN0P8rd1I=:"
    "v44hs5clK7fI9Ar3wTcqaP716Cp5Fia2eTwqpdKJiMA=";

ScramSecret rfc_secret() {
  auto secret = make_scram_secret("pencil", *base64_decode(kRfcSalt), 4096);
  REQUIRE(secret.ok());
  return *secret;
}

ScramSecret secret_for(std::string_view password) {
  auto s = make_scram_secret(password, "0123456789abcdef", 4096);
  REQUIRE(s.ok());
  return *s;
}

ScramKey key_from_b64(std::string_view b64) {
  auto raw = base64_decode(b64);
  REQUIRE(raw.has_value());
  REQUIRE(raw->size() == 32);
  ScramKey k;
  std::copy(raw->begin(), raw->end(), k.begin());
  return k;
}

// Runs a full exchange; returns the server's verdict on the client's proof.
struct Exchange {
  Status server_status;
  Status client_status;
};
Exchange run(ScramServer& server, ScramClient& client) {
  auto c1 = client.client_first();
  REQUIRE(c1.ok());
  auto s1 = server.client_first(*c1);
  REQUIRE(s1.ok());
  auto c2 = client.server_first(*s1);
  REQUIRE(c2.ok());
  auto s2 = server.client_final(*c2);
  if (!s2) return {s2.error(), Status()};
  return {Status(), client.server_final(*s2)};
}

}  // namespace

TEST_CASE("RFC 7677 example, server side, byte for byte") {
  ScramServer server(rfc_secret(), std::string(kRfcServerNonce));
  CHECK(server.state() == ScramServer::State::WaitClientFirst);
  auto first = server.client_first(kRfcClientFirst);
  REQUIRE(first.ok());
  CHECK(*first == kRfcServerFirst);
  auto final = server.client_final(kRfcClientFinal);
  REQUIRE(final.ok());
  CHECK(*final == kRfcServerFinal);
  CHECK(server.succeeded());
  // ClientKey = HMAC(SaltedPassword, "Client Key") for the RFC's password and salt.
  CHECK(server.client_key() == key_from_b64("pg/JI9Z+hkSpLRa5btpe9GVrDHJcSEN0viVTVXaZbos="));
}

TEST_CASE("RFC 7677 example, client side, byte for byte") {
  auto client = ScramClient::with_password("pencil", std::string(kRfcClientNonce));
  client.set_username("user");
  CHECK(client.can_verify_server());
  auto first = client.client_first();
  REQUIRE(first.ok());
  CHECK(*first == kRfcClientFirst);
  auto final = client.server_first(kRfcServerFirst);
  REQUIRE(final.ok());
  CHECK(*final == kRfcClientFinal);
  REQUIRE(client.server_final(kRfcServerFinal).ok());
  CHECK(client.succeeded());
  CHECK(client.server_verified());
}

TEST_CASE("secrets made by PostgreSQL 15 are parsed, reproduced and formatted identically") {
  struct Vec {
    std::string_view stored;
    std::string_view password;
  };
  for (const Vec& v :
       {Vec{kPgSecretHorse, "correct horse battery staple"}, Vec{kPgSecretPencil, "pencil"},
        Vec{kPgSecretUtf8, "p\xc3\xa4ssw\xc3\xb6rd"}}) {
    CAPTURE(v.password);
    auto parsed = parse_scram_secret(v.stored);
    REQUIRE(parsed.ok());
    CHECK(parsed->iterations == 4096);
    CHECK(parsed->salt.size() == 16);
    CHECK(format_scram_secret(*parsed) == v.stored);
    auto made = make_scram_secret(v.password, parsed->salt, parsed->iterations);
    REQUIRE(made.ok());
    CHECK(*made == *parsed);
    CHECK(format_scram_secret(*made) == v.stored);
  }
  // A near miss does not reproduce the secret.
  auto parsed = parse_scram_secret(kPgSecretHorse);
  REQUIRE(parsed.ok());
  auto near = make_scram_secret("correct horse battery stapler", parsed->salt, 4096);
  REQUIRE(near.ok());
  CHECK(near->stored_key != parsed->stored_key);
  CHECK(near->server_key != parsed->server_key);
}

TEST_CASE("documented SASLprep difference: non-ASCII spaces are not mapped") {
  // PostgreSQL maps U+00A0 to U+0020 before hashing; this codec hashes the raw bytes, so the
  // raw password does not reproduce the secret while its SASLprep'd form does.
  auto parsed = parse_scram_secret(kPgSecretNbsp);
  REQUIRE(parsed.ok());
  auto raw = make_scram_secret(
      "a\xc2\xa0"
      "b",
      parsed->salt, parsed->iterations);
  auto mapped = make_scram_secret("a b", parsed->salt, parsed->iterations);
  REQUIRE(raw.ok());
  REQUIRE(mapped.ok());
  CHECK_FALSE(*raw == *parsed);
  CHECK(*mapped == *parsed);
  CHECK(scram_prepare_password("plain ASCII") == "plain ASCII");
}

TEST_CASE("malformed secrets are refused without echoing them") {
  const std::vector<std::string> bad = {
      "",
      "SCRAM-SHA-256",
      "SCRAM-SHA-256$",
      "scram-sha-256$4096:c2FsdA==$" + std::string(44, 'A') + ":" + std::string(44, 'A'),
      "SCRAM-SHA-256$0:c2FsdA==$AAAA:AAAA",
      "SCRAM-SHA-256$-1:c2FsdA==$AAAA:AAAA",
      "SCRAM-SHA-256$4096x:c2FsdA==$AAAA:AAAA",
      "SCRAM-SHA-256$99999999999:c2FsdA==$AAAA:AAAA",
      "SCRAM-SHA-256$4096:$" + std::string(kPgSecretHorse.substr(44)),  // empty salt
      "SCRAM-SHA-256$4096:c2FsdA=$" + std::string(kPgSecretHorse.substr(44)),
      "SCRAM-SHA-256$4096:CCKKiLASDpVhWr0Ce7xRqg==$c2hvcnQ=:c2hvcnQ=",  // 5-byte keys
      std::string(kPgSecretHorse) + "x",
      std::string(kPgSecretHorse.substr(0, kPgSecretHorse.size() - 45)),  // no ServerKey
      "SCRAM-SHA-256$4096$CCKKiLASDpVhWr0Ce7xRqg==:a:b",
  };
  for (const std::string& s : bad) {
    CAPTURE(s);
    auto r = parse_scram_secret(s);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == EINVAL);
    CHECK(r.error().message.find("invalid SCRAM-SHA-256 secret") == 0);
    if (s.size() > 20) CHECK(r.error().message.find(s) == std::string::npos);
  }
  CHECK_FALSE(make_scram_secret("pw", "", 4096).ok());
  CHECK_FALSE(make_scram_secret("pw", "salt", 0).ok());
}

TEST_CASE("server and client with random nonces agree; a random-salt secret works") {
  auto secret = make_scram_secret("s3cret!");
  REQUIRE(secret.ok());
  CHECK(secret->salt.size() == kScramDefaultSaltLen);
  CHECK(secret->iterations == kScramDefaultIterations);
  auto again = make_scram_secret("s3cret!");
  REQUIRE(again.ok());
  CHECK(again->salt != secret->salt);  // fresh salt each time

  ScramServer server(*secret);
  auto client = ScramClient::with_password("s3cret!");
  Exchange e = run(server, client);
  CHECK(e.server_status.ok());
  CHECK(e.client_status.ok());
  CHECK(server.succeeded());
  CHECK(client.succeeded());
  CHECK(client.server_verified());
  // The recovered ClientKey hashes to the StoredKey.
  CHECK(scram_crypto::sha256(server.client_key()) == secret->stored_key);
}

TEST_CASE("a wrong password is rejected with its own error code") {
  ScramServer server(secret_for("right"));
  auto client = ScramClient::with_password("wrong");
  Exchange e = run(server, client);
  REQUIRE_FALSE(e.server_status.ok());
  CHECK(e.server_status.error().code == kScramWrongPassword);
  CHECK(scram_error_sqlstate(e.server_status.error()) == "28P01");
  CHECK(server.state() == ScramServer::State::Failed);
  CHECK(server.client_key() == ScramKey{});
  // Nothing more is accepted after a failure.
  CHECK_FALSE(server.client_final("c=biws,r=x,p=AAAA").ok());
}

TEST_CASE("a ClientKey recovered by the server logs in to another server with the same secret") {
  const ScramSecret secret = secret_for("hunter2");
  ScramServer proxy_side(secret);
  auto app = ScramClient::with_password("hunter2");
  REQUIRE(run(proxy_side, app).server_status.ok());
  REQUIRE(proxy_side.succeeded());

  // The proxy now logs into "PostgreSQL" (another ScramServer with the same stored secret),
  // without knowing the password.
  ScramServer postgres(secret);
  auto proxy_client = ScramClient::from_verified_server(proxy_side);
  CHECK(proxy_client.can_verify_server());
  Exchange e = run(postgres, proxy_client);
  CHECK(e.server_status.ok());
  CHECK(e.client_status.ok());
  CHECK(proxy_client.server_verified());

  SUBCASE("without a ServerKey the login works but the server is not verified") {
    ScramServer pg2(secret);
    auto c = ScramClient::with_keys({proxy_side.client_key(), std::nullopt, {}, {}});
    CHECK_FALSE(c.can_verify_server());
    Exchange e2 = run(pg2, c);
    CHECK(e2.server_status.ok());
    CHECK(e2.client_status.ok());
    CHECK(c.succeeded());
    CHECK_FALSE(c.server_verified());
  }
  SUBCASE("keys from an old secret: the changed salt is detected before sending a proof") {
    auto changed = make_scram_secret("hunter3", "another salt....", 4096);
    REQUIRE(changed.ok());
    ScramServer pg3(*changed);
    auto c = ScramClient::from_verified_server(proxy_side);
    auto c1 = c.client_first();
    REQUIRE(c1.ok());
    auto s1 = pg3.client_first(*c1);
    REQUIRE(s1.ok());
    auto c2 = c.server_first(*s1);
    REQUIRE_FALSE(c2.ok());
    CHECK(c2.error().code == kScramStaleKeys);
  }
  SUBCASE("a wrong ClientKey is refused by the server") {
    ScramServer pg4(secret);
    ScramKey wrong = proxy_side.client_key();
    wrong[0] ^= 1;
    auto c = ScramClient::with_keys({wrong, secret.server_key, secret.salt, secret.iterations});
    Exchange e4 = run(pg4, c);
    REQUIRE_FALSE(e4.server_status.ok());
    CHECK(e4.server_status.error().code == kScramWrongPassword);
  }
}

TEST_CASE("the client refuses a server that does not know the password") {
  // A server built from a different password's secret rejects us; but also check the client's
  // own verification: feed it a forged server-final with a wrong signature.
  auto client = ScramClient::with_password("pencil", std::string(kRfcClientNonce));
  client.set_username("user");
  REQUIRE(client.client_first().ok());
  REQUIRE(client.server_first(kRfcServerFirst).ok());
  auto forged = client.server_final("v=" + base64_encode(std::string(32, 'x')));
  REQUIRE_FALSE(forged.ok());
  CHECK(forged.error().code == EACCES);
  CHECK_FALSE(client.succeeded());

  auto c2 = ScramClient::with_password("pencil", std::string(kRfcClientNonce));
  REQUIRE(c2.client_first().ok());
  REQUIRE(c2.server_first(kRfcServerFirst).ok());
  auto e = c2.server_final("e=invalid-proof");
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().message.find("invalid-proof") != std::string::npos);
}

TEST_CASE("gs2 header: n and y accepted, channel binding and authzid refused clearly") {
  SUBCASE("y,, is accepted and must be echoed in c=") {
    ScramServer server(rfc_secret(), std::string(kRfcServerNonce));
    REQUIRE(server.client_first("y,,n=,r=abc").ok());
    // c= must be base64("y,,") = "eSws"; "biws" (n,,) is a mismatch.
    ScramServer server2(rfc_secret(), std::string(kRfcServerNonce));
    REQUIRE(server2.client_first("y,,n=,r=abc").ok());
    auto mismatch = server2.client_final("c=biws,r=abc" + std::string(kRfcServerNonce) +
                                         ",p=" + base64_encode(std::string(32, '\0')));
    REQUIRE_FALSE(mismatch.ok());
    CHECK(mismatch.error().code == kScramMalformed);
    auto wrong_pw = server.client_final("c=eSws,r=abc" + std::string(kRfcServerNonce) +
                                        ",p=" + base64_encode(std::string(32, '\0')));
    REQUIRE_FALSE(wrong_pw.ok());
    CHECK(wrong_pw.error().code == kScramWrongPassword);  // got past the channel-binding check
  }
  SUBCASE("p= (SCRAM-SHA-256-PLUS) is refused") {
    ScramServer server(rfc_secret());
    auto r = server.client_first("p=tls-server-end-point,,n=,r=abc");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == kScramUnsupported);
    CHECK(r.error().message.find("channel binding") != std::string::npos);
    CHECK(scram_error_sqlstate(r.error()) == "0A000");
  }
  SUBCASE("authzid is refused") {
    ScramServer server(rfc_secret());
    auto r = server.client_first("n,a=admin,n=,r=abc");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == kScramUnsupported);
  }
  SUBCASE("mandatory extension is refused") {
    ScramServer server(rfc_secret());
    auto r = server.client_first("n,,m=ext,n=,r=abc");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == kScramUnsupported);
  }
  CHECK(is_supported_sasl_mechanism("SCRAM-SHA-256"));
  CHECK_FALSE(is_supported_sasl_mechanism("SCRAM-SHA-256-PLUS"));
  CHECK_FALSE(is_supported_sasl_mechanism("scram-sha-256"));
}

TEST_CASE("malformed client messages are rejected and end the exchange") {
  const std::vector<std::string> bad_first = {"",
                                              "n",
                                              "n,",
                                              "n,,",
                                              "x,,n=,r=abc",
                                              "n,,r=abc",
                                              "n,,n=",
                                              "n,,n=,r=",
                                              "n,,n=,r=a b",
                                              "n,,n=,r=abc,",
                                              "n,,n=,r=abc,zz",
                                              "n,,n=,r=a\x01",
                                              "n,,n=,,r=abc",
                                              "n,b,n=,r=abc"};
  for (const std::string& m : bad_first) {
    CAPTURE(m);
    ScramServer server(rfc_secret());
    auto r = server.client_first(m);
    REQUIRE_FALSE(r.ok());
    CHECK(server.state() == ScramServer::State::Failed);
  }

  const std::string nonce = std::string(kRfcClientNonce) + std::string(kRfcServerNonce);
  const std::string proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
  const std::vector<std::string> bad_final = {
      "",
      "c=biws",
      "c=biws,r=" + nonce,
      "c=biws,p=" + proof,
      "r=" + nonce + ",c=biws,p=" + proof,
      "c=biws,r=" + nonce + ",p=" + proof + ",x=1",                // proof must be last
      "c=bm90,r=" + nonce + ",p=" + proof,                         // wrong gs2 header
      "c=biws,r=" + std::string(kRfcClientNonce) + ",p=" + proof,  // client nonce only
      "c=biws,r=" + nonce + "x,p=" + proof,
      "c=biws,r=" + nonce + ",p=" + proof.substr(4),  // proof too short
      "c=biws,r=" + nonce + ",p=!!!!" + proof.substr(4),
      "c=biws,r=" + nonce + ",p=",
  };
  for (const std::string& m : bad_final) {
    CAPTURE(m);
    ScramServer server(rfc_secret(), std::string(kRfcServerNonce));
    REQUIRE(server.client_first(kRfcClientFirst).ok());
    auto r = server.client_final(m);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == kScramMalformed);
    CHECK(scram_error_sqlstate(r.error()) == "08P01");
    CHECK(server.state() == ScramServer::State::Failed);
  }

  // Extensions before the proof are allowed (and covered by the proof).
  ScramServer server(rfc_secret(), std::string(kRfcServerNonce));
  REQUIRE(server.client_first(kRfcClientFirst).ok());
  auto r = server.client_final("c=biws,r=" + nonce + ",x=ext,p=" + proof);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == kScramWrongPassword);  // well formed; proof was for another message

  // Out of order.
  ScramServer early(rfc_secret());
  CHECK_FALSE(early.client_final(kRfcClientFinal).ok());
  ScramServer twice(rfc_secret());
  REQUIRE(twice.client_first(kRfcClientFirst).ok());
  CHECK_FALSE(twice.client_first(kRfcClientFirst).ok());
}

TEST_CASE("malformed server messages are rejected by the client") {
  const std::string cn(kRfcClientNonce);
  const std::vector<std::string> bad_first = {
      "",
      "r=" + cn + "srv,s=c2FsdA==",           // no i
      "r=" + cn + ",s=c2FsdA==,i=4096",       // nonce not extended
      "r=other" + cn + ",s=c2FsdA==,i=4096",  // nonce not a prefix match
      "r=" + cn + "srv,s=,i=4096",            // empty salt
      "r=" + cn + "srv,s=c2FsdA=,i=4096",     // bad base64
      "r=" + cn + "srv,s=c2FsdA==,i=0",
      "r=" + cn + "srv,s=c2FsdA==,i=-5",
      "r=" + cn + "srv,s=c2FsdA==,i=4096x",
      "r=" + cn + "srv,s=c2FsdA==,i=99999999999",
      "m=ext,r=" + cn + "srv,s=c2FsdA==,i=4096",
      "s=c2FsdA==,r=" + cn + "srv,i=4096",
  };
  for (const std::string& m : bad_first) {
    CAPTURE(m);
    auto c = ScramClient::with_password("pencil", cn);
    REQUIRE(c.client_first().ok());
    CHECK_FALSE(c.server_first(m).ok());
    CHECK(c.state() == ScramClient::State::Failed);
  }
  for (const std::string m : {"", "v=", "v=c2hvcnQ=", "x=1", "v"}) {
    CAPTURE(m);
    auto c = ScramClient::with_password("pencil", cn);
    REQUIRE(c.client_first().ok());
    REQUIRE(c.server_first(kRfcServerFirst).ok());
    CHECK_FALSE(c.server_final(m).ok());
  }
  auto c = ScramClient::with_password("pencil");
  CHECK_FALSE(c.server_first(kRfcServerFirst).ok());  // before client_first
}

TEST_CASE("random bytes never crash the SCRAM parsers") {
  std::mt19937 rng(5802);
  const std::string alphabet = "nyrpcsiv=,,,abc+/09AZ\x01\xff";
  std::uniform_int_distribution<size_t> len(0, 60);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  const ScramSecret secret = secret_for("x");
  for (int iter = 0; iter < 3000; ++iter) {
    std::string m(len(rng), '\0');
    for (char& ch : m) ch = alphabet[pick(rng)];
    const std::string prefixed = (iter % 2 ? "n,," : "") + m;

    ScramServer s(secret, "srvnonce");
    if (auto r = s.client_first(prefixed); r.ok()) CHECK_FALSE(s.client_final(m).ok());
    auto c = ScramClient::with_password("x", "cli");
    REQUIRE(c.client_first().ok());
    (void)c.server_first(m);
    (void)parse_scram_secret(m);
    (void)parse_scram_secret("SCRAM-SHA-256$" + m);
  }
}

TEST_CASE("mock secrets: stable salt per user, no password matches") {
  const ScramSecret a1 = make_mock_scram_secret("ghost", "mock-key");
  const ScramSecret a2 = make_mock_scram_secret("ghost", "mock-key");
  const ScramSecret b = make_mock_scram_secret("other", "mock-key");
  CHECK(a1 == a2);
  CHECK(a1.salt != b.salt);
  CHECK(a1.salt.size() == kScramDefaultSaltLen);
  for (std::string_view pw : {"", "ghost", "mock-key", "password"}) {
    ScramServer server(a1);
    auto client = ScramClient::with_password(pw);
    Exchange e = run(server, client);
    REQUIRE_FALSE(e.server_status.ok());
    CHECK(e.server_status.error().code == kScramWrongPassword);
  }
}

TEST_CASE("the client escapes its user name and generates printable nonces") {
  auto c = ScramClient::with_password("pw");
  c.set_username("a=b,c");
  auto first = c.client_first();
  REQUIRE(first.ok());
  CHECK(first->rfind("n,,n=a=3Db=2Cc,r=", 0) == 0);
  const std::string nonce = first->substr(std::string("n,,n=a=3Db=2Cc,r=").size());
  CHECK(nonce.size() == 24);  // 18 random bytes in base64
  CHECK(nonce.find(',') == std::string::npos);
  // The server accepts it and appends its own nonce.
  ScramServer s(secret_for("pw"));
  auto sf = s.client_first(*first);
  REQUIRE(sf.ok());
  CHECK(sf->rfind("r=" + nonce, 0) == 0);
  CHECK(sf->size() > ("r=" + nonce).size() + 24);
}
