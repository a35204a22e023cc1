// The untyped first packet: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest.
#include <doctest/doctest.h>

#include <random>
#include <set>

#include "pg/protocol.h"
#include "pg/startup.h"
#include "pg/writer.h"
#include "pg_test_util.h"

using namespace helios;
using namespace helios::pg;
using helios::pg::test::as_bytes;
using helios::pg::test::be32_bytes;
using namespace std::string_view_literals;

namespace {

// A packet with the given code and raw body; the length field is computed unless given.
std::string packet(int32_t code, std::string_view body, int64_t length = -1) {
  const uint32_t len = length >= 0 ? uint32_t(length) : uint32_t(8 + body.size());
  return be32_bytes(len) + be32_bytes(uint32_t(code)) + std::string(body);
}

Result<StartupPacket> parse(std::string_view p) {
  return parse_startup_packet(as_bytes(p));
}

}  // namespace

TEST_CASE("a StartupMessage from the writer parses back with all parameters in order") {
  std::string out;
  StartupParams params = {{"user", "alice"},
                          {"database", "orders"},
                          {"application_name", "premium_tenant_7"},
                          {"options", "-c search_path=app"}};
  write_startup_message(out, params);
  auto header = peek_startup_header(as_bytes(out));
  REQUIRE(header.ok());
  CHECK(header->kind == StartupKind::Startup);
  CHECK(header->length == out.size());
  CHECK(header->code == kProtocolV3);

  auto p = parse(out);
  REQUIRE(p.ok());
  CHECK(p->kind == StartupKind::Startup);
  CHECK(p->protocol == 196608);
  CHECK(p->major == 3);
  CHECK(p->minor == 0);
  CHECK(p->user == "alice");
  CHECK(p->database == "orders");
  CHECK(p->parameters == params);
  REQUIRE(p->find("application_name") != nullptr);
  CHECK(*p->find("application_name") == "premium_tenant_7");
  CHECK(p->find("client_encoding") == nullptr);
  CHECK(p->unsupported_options.empty());
  CHECK_FALSE(p->needs_protocol_negotiation());
}

TEST_CASE("database defaults to the user name") {
  auto absent = parse(packet(kProtocolV3, "user\0bob\0\0"sv));
  REQUIRE(absent.ok());
  CHECK(absent->database == "bob");
  auto empty = parse(packet(kProtocolV3, "database\0\0user\0bob\0\0"sv));
  REQUIRE(empty.ok());
  CHECK(empty->database == "bob");
}

TEST_CASE("protocol 3.x with minor > 0 and _pq_ options is accepted and reported") {
  auto p = parse(packet(make_protocol(3, 2), "user\0u\0_pq_.compression\0zstd\0\0"sv));
  REQUIRE(p.ok());
  CHECK(p->major == 3);
  CHECK(p->minor == 2);
  CHECK(p->unsupported_options == std::vector<std::string>{"_pq_.compression"});
  CHECK(p->find("_pq_.compression") == nullptr);
  CHECK(p->needs_protocol_negotiation());

  // The answer the caller sends, byte for byte what PostgreSQL 15 sends for the same packet:
  // NegotiateProtocolVersion with the full version code 3.0 (196608) and the option.
  std::string out;
  write_negotiate_protocol_version(out, kNewestProtocol, p->unsupported_options);
  CHECK(out == "v\0\0\0\x1d\0\x03\0\0\0\0\0\1_pq_.compression\0"sv);
}

TEST_CASE("unsupported protocol versions are refused with their own error code") {
  for (int32_t code :
       {make_protocol(2, 0), make_protocol(4, 0), make_protocol(1234, 5681), int32_t(0)}) {
    CAPTURE(code);
    auto p = parse(packet(code, "user\0u\0\0"sv));
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().code == kStartupUnsupportedProtocol);
  }
  auto p = parse(packet(make_protocol(2, 0), "user\0u\0\0"sv));
  CHECK(p.error().message == "unsupported frontend protocol 2.0: server supports 3.0 to 3.0");
  CHECK(startup_error_sqlstate(p.error()) == "0A000");
  auto layout = parse(packet(kProtocolV3, "user\0u\0"sv));
  REQUIRE_FALSE(layout.ok());
  CHECK(startup_error_sqlstate(layout.error()) == "08P01");
}

TEST_CASE("malformed startup packets get a clear 08P01 message") {
  struct Bad {
    std::string packet;
    std::string message;
  };
  const std::string layout = "invalid startup packet layout: expected terminator as last byte";
  const std::vector<Bad> bad = {
      {packet(kProtocolV3, ""), layout},                 // no parameters, no terminator
      {packet(kProtocolV3, "user\0u\0"sv), layout},      // missing final NUL
      {packet(kProtocolV3, "user\0u\0\0x"sv), layout},   // bytes after the terminator
      {packet(kProtocolV3, "user\0u\0\0\0"sv), layout},  // two terminators
      {packet(kProtocolV3, "user\0u"sv), layout},        // value without NUL
      {packet(kProtocolV3, "user"sv), layout},           // name without NUL
      {packet(kProtocolV3, "user\0"sv),
       "invalid startup packet layout: startup parameter \"user\" has no value"},
      {packet(kProtocolV3, "database\0d\0\0"sv),
       "no PostgreSQL user name specified in startup packet"},
      {packet(kProtocolV3, "user\0\0\0"sv), "no PostgreSQL user name specified in startup packet"},
      {packet(kProtocolV3, "user\0a\0user\0b\0\0"sv),
       "invalid startup packet: duplicate startup parameter \"user\""},
      {packet(kProtocolV3, "user\0a\0_pq_.x\0\0_pq_.x\0\0\0"sv),
       "invalid startup packet: duplicate startup parameter \"_pq_.x\""},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.packet);
    auto p = parse(b.packet);
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().code == EPROTO);
    CHECK(p.error().message == b.message);
  }
}

TEST_CASE("length bounds are checked from the first 8 bytes") {
  auto peek = [](std::string_view p) { return peek_startup_header(as_bytes(p)); };
  CHECK(peek(packet(kProtocolV3, "", 10000)).ok());  // PostgreSQL's limit itself is fine
  for (int64_t len : {int64_t(0), int64_t(4), int64_t(7), int64_t(10001), int64_t(0x7fffffff),
                      int64_t(0x80000000), int64_t(0xffffffff)}) {
    CAPTURE(len);
    auto h = peek(packet(kProtocolV3, "", len));
    REQUIRE_FALSE(h.ok());
    CHECK(h.error().code == EPROTO);
    CHECK(h.error().message.find("invalid length of startup packet") == 0);
  }
  // Fewer than 8 bytes: not an error yet, the caller waits for more.
  auto partial = peek("\0\0\0\x10\0\x03"sv);
  REQUIRE_FALSE(partial.ok());
  CHECK(partial.error().code == EAGAIN);

  // A length field that disagrees with the bytes handed to the parser.
  const std::string good = packet(kProtocolV3, "user\0u\0\0"sv);
  auto longer = parse(good + "x");
  REQUIRE_FALSE(longer.ok());
  CHECK(longer.error().message.find("length field says") != std::string::npos);
  CHECK_FALSE(parse(good.substr(0, good.size() - 1)).ok());
  CHECK_FALSE(parse(good.substr(0, 5)).ok());
  CHECK_FALSE(parse("").ok());
}

TEST_CASE("SSLRequest, GSSENCRequest and CancelRequest") {
  std::string ssl, gss, cancel;
  write_ssl_request(ssl);
  write_gss_enc_request(gss);
  write_cancel_request(cancel, 31337, -123456789);

  auto s = parse(ssl);
  REQUIRE(s.ok());
  CHECK(s->kind == StartupKind::SslRequest);
  auto g = parse(gss);
  REQUIRE(g.ok());
  CHECK(g->kind == StartupKind::GssEncRequest);
  auto c = parse(cancel);
  REQUIRE(c.ok());
  CHECK(c->kind == StartupKind::CancelRequest);
  CHECK(c->cancel_process_id == 31337);
  CHECK(c->cancel_secret_key == -123456789);
  CHECK_FALSE(c->needs_protocol_negotiation());

  auto h = peek_startup_header(as_bytes(cancel));
  REQUIRE(h.ok());
  CHECK(h->kind == StartupKind::CancelRequest);
  CHECK(h->length == 16);

  // Special requests have fixed sizes.
  CHECK_FALSE(parse(packet(kSslRequestCode, "xxxx")).ok());
  CHECK_FALSE(parse(packet(kGssEncRequestCode, "x")).ok());
  CHECK_FALSE(parse(packet(kCancelRequestCode, "12345678x")).ok());
  auto short_cancel = parse(packet(kCancelRequestCode, "1234"));
  REQUIRE_FALSE(short_cancel.ok());
  CHECK(short_cancel.error().message == "invalid length of CancelRequest: 12 bytes, expected 16");
}

TEST_CASE("every truncation of a startup body (with a matching length field) is refused") {
  static constexpr char kBody[] = "user\0alice\0database\0db\0application_name\0app\0";
  const std::string body(kBody, sizeof kBody);  // with the literal's NUL: the terminator
  REQUIRE(parse(packet(kProtocolV3, body)).ok());
  for (size_t n = 0; n < body.size(); ++n) {
    CAPTURE(n);
    CHECK_FALSE(parse(packet(kProtocolV3, body.substr(0, n))).ok());
  }
}

TEST_CASE("random startup packets never crash, and accepted ones are well formed") {
  std::mt19937 rng(7);
  const std::vector<std::string> tokens = {"user", "database", "_pq_.x", "a", "bob", "", "\xff"};
  std::uniform_int_distribution<size_t> pick(0, tokens.size() - 1);
  std::uniform_int_distribution<int> count(0, 8);
  std::uniform_int_distribution<int> coin(0, 9);
  size_t accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string body;
    const int n = count(rng);
    for (int i = 0; i < n; ++i) {
      body += tokens[pick(rng)];
      if (coin(rng) != 0) body += '\0';  // occasionally a missing NUL
    }
    if (coin(rng) < 8) body += '\0';
    const int32_t code = coin(rng) == 0 ? make_protocol(3, coin(rng)) : kProtocolV3;
    auto p = parse(packet(code, body));
    if (!p.ok()) {
      CHECK_FALSE(p.error().message.empty());
      continue;
    }
    ++accepted;
    CHECK_FALSE(p->user.empty());
    CHECK_FALSE(p->database.empty());
    std::set<std::string> names;
    for (const auto& kv : p->parameters) CHECK(names.insert(kv.first).second);
    if (p->unsupported_options.empty()) {  // re-encoding gives back the same packet
      std::string out;
      write_startup_message(out, p->parameters, code);
      CHECK(out == packet(code, body));
    }
  }
  CHECK(accepted > 0);

  // Random 8-byte headers: anything accepted has a sane length.
  std::uniform_int_distribution<int> byte(0, 255);
  for (int iter = 0; iter < 20000; ++iter) {
    uint8_t h[8];
    for (uint8_t& b : h) b = uint8_t(byte(rng));
    if (iter % 2) {  // half of them with a plausible length to reach the code checks
      h[0] = h[1] = 0;
      h[2] &= 0x1f;
    }
    auto r = peek_startup_header(std::span<const uint8_t>(h, 8));
    if (r.ok()) CHECK((r->length >= 8 && r->length <= kMaxStartupPacket));
  }
}
