// Writer and reader of the pg codec: byte-exact encodings, round trips through the parsers,
// split and merged buffers, truncated and garbage input.
#include <doctest/doctest.h>

#include <functional>
#include <random>

#include "pg/protocol.h"
#include "pg/reader.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "pg_test_util.h"

using namespace helios;
using namespace helios::pg;
using helios::pg::test::Framed;
using helios::pg::test::only_message;
using helios::pg::test::take_messages;

using namespace std::string_view_literals;

TEST_CASE("MessageWriter patches the length and writes network byte order") {
  std::string out = "xx";  // appends, never overwrites what is there
  MessageWriter w(out);
  w.begin('T').put_u8(0xAB).put_i16(-2).put_i32(0x01020304).put_cstring("hi").put_bytes("\x00z"sv);
  CHECK(w.in_message());
  w.end();
  CHECK_FALSE(w.in_message());
  CHECK(out == "xxT\x00\x00\x00\x10\xAB\xFF\xFE\x01\x02\x03\x04hi\x00\x00z"sv);

  // reusable after end(); untyped message has no type byte
  w.begin_untyped().put_i32(7);
  w.end();
  CHECK(out.substr(19) == "\x00\x00\x00\x08\x00\x00\x00\x07"sv);
}

TEST_CASE("put_cstring cuts a string at an embedded NUL so framing stays valid") {
  std::string out;
  write_query(out, "SELECT 1\0; DROP TABLE x"sv);
  CHECK(out == "Q\x00\x00\x00\x0dSELECT 1\x00"sv);
  const Framed m = only_message(out);
  auto sql = parse_query(m.body);
  REQUIRE(sql.ok());
  CHECK(*sql == "SELECT 1");
}

TEST_CASE("fixed encodings match the protocol documentation") {
  std::string out;
  write_ready_for_query(out, kTxIdle);
  CHECK(out == "Z\x00\x00\x00\x05I"sv);
  out.clear();
  write_sync(out);
  write_flush(out);
  write_terminate(out);
  write_parse_complete(out);
  write_bind_complete(out);
  write_close_complete(out);
  write_no_data(out);
  write_empty_query_response(out);
  CHECK(out ==
        "S\0\0\0\4H\0\0\0\4X\0\0\0\4"
        "1\0\0\0\4"
        "2\0\0\0\4"
        "3\0\0\0\4n\0\0\0\4I\0\0\0\4"sv);
  out.clear();
  write_auth_ok(out);
  CHECK(out == "R\x00\x00\x00\x08\x00\x00\x00\x00"sv);
  out.clear();
  write_ssl_request(out);
  CHECK(out == "\x00\x00\x00\x08\x04\xd2\x16\x2f"sv);
  out.clear();
  write_cancel_request(out, 0x11223344, -1);
  CHECK(out == "\x00\x00\x00\x10\x04\xd2\x16\x2e\x11\x22\x33\x44\xff\xff\xff\xff"sv);
  out.clear();
  write_backend_key_data(out, 1234, -5);
  CHECK(out == "K\x00\x00\x00\x0c\x00\x00\x04\xd2\xff\xff\xff\xfb"sv);
}

TEST_CASE("MessageReader bounds checks and keeps the error sticky") {
  const std::string body(
      "\x00\x05"
      "ab\0"
      "\x01",
      6);
  MessageReader r(body);
  CHECK(r.get_i16() == 5);
  CHECK(r.get_cstring() == "ab");
  CHECK(r.remaining() == 1);
  CHECK(r.get_i32() == 0);  // only 1 byte left
  CHECK_FALSE(r.ok());
  CHECK(r.get_u8() == 0);  // would fit, but the error is sticky
  CHECK(r.get_cstring().empty());
  CHECK(r.peek_rest().empty());

  MessageReader no_nul("abc"sv);
  CHECK(no_nul.get_cstring().empty());
  CHECK_FALSE(no_nul.ok());

  MessageReader empty{std::string_view{}};
  CHECK(empty.at_end());
  CHECK(empty.get_bytes(0).empty());
  CHECK(empty.ok());
  CHECK(empty.get_bytes(1).empty());
  CHECK_FALSE(empty.ok());

  MessageReader neg("\xff\xff\xff\xfe\x80\x00"sv);
  CHECK(neg.get_i32() == -2);
  CHECK(neg.get_i16() == -32768);
  CHECK(neg.at_end());
  CHECK(neg.ok());
}

TEST_CASE("ErrorResponse and NoticeResponse round trip") {
  SUBCASE("short form with detail and hint") {
    std::string out;
    write_error_response(out, severity::kFatal, sqlstate::kTooManyConnections,
                         "pool app/db is full (max_connections 20)", "waited 5000 ms",
                         "raise max_connections");
    const Framed m = only_message(out);
    CHECK(m.type == be::kErrorResponse);
    auto f = parse_error_response(m.body);
    REQUIRE(f.ok());
    CHECK(f->severity == "FATAL");
    CHECK(f->severity_nonlocalized == "FATAL");
    CHECK(f->sqlstate == "53300");
    CHECK(f->message == "pool app/db is full (max_connections 20)");
    CHECK(f->detail == "waited 5000 ms");
    CHECK(f->hint == "raise max_connections");
    CHECK(f->is_fatal());
    CHECK(f->other.empty());
  }
  SUBCASE("no detail or hint: those fields are left out") {
    std::string out;
    write_notice_response(out, severity::kNotice, sqlstate::kWarning, "hello");
    CHECK(out == "N\x00\x00\x00\x23SNOTICE\0VNOTICE\0C01000\0Mhello\0\0"sv);
    auto f = parse_error_response(only_message(out).body);
    REQUIRE(f.ok());
    CHECK(f->detail.empty());
    CHECK_FALSE(f->is_fatal());
  }
  SUBCASE("every field of a PostgreSQL error survives a rewrite") {
    ErrorFields e;
    e.severity = "ERREUR";  // localized
    e.severity_nonlocalized = "ERROR";
    e.sqlstate = "42P01";
    e.message = "relation \"nope\" does not exist";
    e.position = "15";
    e.where = "SQL function";
    e.other = {{'F', "parse_relation.c"}, {'L', "1392"}, {'R', "parserOpenTable"}};
    std::string out;
    write_error_response(out, e);
    auto f = parse_error_response(only_message(out).body);
    REQUIRE(f.ok());
    CHECK(f->severity == "ERREUR");
    CHECK(f->effective_severity() == "ERROR");
    CHECK(f->position == "15");
    CHECK(f->where == "SQL function");
    CHECK(f->get_other('R') == "parserOpenTable");
    CHECK(f->other == e.other);
  }
}

TEST_CASE("backend messages the proxy inspects round trip") {
  std::string out;
  write_parameter_status(out, "server_version", "15.18");
  write_backend_key_data(out, 4242, 0x7fffffff);
  write_ready_for_query(out, kTxFailed);
  write_command_complete(out, "INSERT 0 3");
  std::vector<std::string> opts = {"_pq_.compression", "_pq_.x"};
  write_negotiate_protocol_version(out, kNewestProtocol, opts);

  std::vector<Framed> msgs;
  REQUIRE(take_messages(out, msgs) == out.size());
  REQUIRE(msgs.size() == 5);

  CHECK(msgs[0].type == be::kParameterStatus);
  auto ps = parse_parameter_status(msgs[0].body);
  REQUIRE(ps.ok());
  CHECK(ps->name == "server_version");
  CHECK(ps->value == "15.18");

  CHECK(msgs[1].type == be::kBackendKeyData);
  auto key = parse_backend_key_data(msgs[1].body);
  REQUIRE(key.ok());
  CHECK(key->process_id == 4242);
  CHECK(key->secret_key == 0x7fffffff);

  CHECK(msgs[2].type == be::kReadyForQuery);
  auto rfq = parse_ready_for_query(msgs[2].body);
  REQUIRE(rfq.ok());
  CHECK(*rfq == 'E');

  CHECK(msgs[3].type == be::kCommandComplete);
  auto tag = parse_command_complete(msgs[3].body);
  REQUIRE(tag.ok());
  CHECK(*tag == "INSERT 0 3");

  CHECK(msgs[4].type == be::kNegotiateProtocolVersion);
  auto npv = parse_negotiate_protocol_version(msgs[4].body);
  REQUIRE(npv.ok());
  CHECK(npv->newest_version == 196608);
  CHECK(npv->unsupported_options == std::vector<std::string_view>{"_pq_.compression", "_pq_.x"});
}

TEST_CASE("Authentication requests round trip and are checked against their code") {
  std::string out;
  write_auth_ok(out);
  write_auth_cleartext_password(out);
  write_auth_md5_password(out, {0xde, 0xad, 0xbe, 0xef});
  std::vector<std::string_view> mechs = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"};
  write_auth_sasl(out, mechs);
  write_auth_sasl_continue(out, "r=abc,s=c2FsdA==,i=4096");
  write_auth_sasl_final(out, "v=xyz");
  std::vector<Framed> msgs;
  REQUIRE(take_messages(out, msgs) == out.size());
  REQUIRE(msgs.size() == 6);
  for (const auto& m : msgs) CHECK(m.type == be::kAuthentication);

  std::vector<AuthenticationRequest> a;
  for (const auto& m : msgs) {
    auto r = parse_authentication(m.body);
    REQUIRE(r.ok());
    a.push_back(*r);
  }
  CHECK(a[0].code == kAuthOk);
  CHECK(a[0].payload.empty());
  CHECK(a[1].code == kAuthCleartext);
  CHECK(a[2].code == kAuthMd5);
  CHECK(a[2].payload == "\xde\xad\xbe\xef"sv);
  CHECK(a[3].code == kAuthSasl);
  auto names = parse_sasl_mechanisms(a[3].payload);
  REQUIRE(names.ok());
  CHECK(*names == std::vector<std::string_view>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
  CHECK(a[4].code == kAuthSaslContinue);
  CHECK(a[4].payload == "r=abc,s=c2FsdA==,i=4096");
  CHECK(a[5].code == kAuthSaslFinal);
  CHECK(a[5].payload == "v=xyz");

  // Payloads that contradict their code.
  CHECK_FALSE(parse_authentication("\0\0\0\5abc"sv).ok());                // md5 salt of 3 bytes
  CHECK_FALSE(parse_authentication("\0\0\0\0x"sv).ok());                  // AuthOk with payload
  CHECK_FALSE(parse_authentication("\0\0\0\x0a\0"sv).ok());               // SASL, no mechanism
  CHECK_FALSE(parse_authentication("\0\0\0\x0aSCRAM-SHA-256\0"sv).ok());  // list unterminated
  CHECK_FALSE(parse_authentication("\0\0\0"sv).ok());
}

TEST_CASE("RowDescription and DataRow for simple text results") {
  std::string out;
  std::vector<std::string_view> cols = {"database", "clients"};
  write_row_description(out, cols);
  std::vector<std::optional<std::string_view>> row1 = {"app"sv, "12"sv};
  std::vector<std::optional<std::string_view>> row2 = {""sv, std::nullopt};
  write_data_row(out, row1);
  write_data_row(out, row2);
  write_command_complete(out, "SHOW");
  std::vector<Framed> msgs;
  REQUIRE(take_messages(out, msgs) == out.size());
  REQUIRE(msgs.size() == 4);

  auto desc = parse_row_description(msgs[0].body);
  REQUIRE(desc.ok());
  REQUIRE(desc->size() == 2);
  CHECK((*desc)[0].name == "database");
  CHECK((*desc)[1].name == "clients");
  CHECK((*desc)[1].type_oid == kOidText);
  CHECK((*desc)[1].type_size == -1);
  CHECK((*desc)[1].format == kFormatText);

  auto r1 = parse_data_row(msgs[1].body);
  REQUIRE(r1.ok());
  CHECK(*r1 == row1);
  auto r2 = parse_data_row(msgs[2].body);
  REQUIRE(r2.ok());
  REQUIRE(r2->size() == 2);
  CHECK((*r2)[0] == ""sv);  // empty string is not NULL
  CHECK_FALSE((*r2)[1].has_value());
}

TEST_CASE("frontend messages round trip") {
  SUBCASE("Parse with parameter types") {
    std::string out;
    std::vector<int32_t> oids = {23, 0, 25};
    write_parse(out, "s1", "SELECT $1::int, $2, $3", oids);
    const Framed m = only_message(out);
    CHECK(m.type == fe::kParse);
    auto p = parse_parse(m.body);
    REQUIRE(p.ok());
    CHECK(p->statement == "s1");
    CHECK(p->query == "SELECT $1::int, $2, $3");
    REQUIRE(p->param_count == 3);
    CHECK(p->param_type(0) == 23);
    CHECK(p->param_type(1) == 0);
    CHECK(p->param_type(2) == 25);
    CHECK(p->param_type(3) == 0);  // out of range
  }
  SUBCASE("unnamed Parse without types") {
    std::string out;
    write_parse(out, "", "BEGIN");
    const Framed m = only_message(out);
    auto p = parse_parse(m.body);
    REQUIRE(p.ok());
    CHECK(p->statement.empty());
    CHECK(p->param_count == 0);
  }
  SUBCASE("Bind with text parameters, then re-addressed with write_bind_raw") {
    std::string out;
    std::vector<std::optional<std::string_view>> params = {"42"sv, std::nullopt, ""sv};
    write_bind(out, "p1", "client_stmt", params);
    const Framed m = only_message(out);
    CHECK(m.type == fe::kBind);
    auto b = parse_bind(m.body);
    REQUIRE(b.ok());
    CHECK(b->portal == "p1");
    CHECK(b->statement == "client_stmt");
    CHECK(b->param_count == 3);
    // format count 0, 3 params (len 2 "42", -1, len 0), result format count 0
    CHECK(b->rest ==
          "\0\0\0\3\0\0\0\2"
          "42\xff\xff\xff\xff\0\0\0\0\0\0"sv);

    std::string rewritten;
    write_bind_raw(rewritten, b->portal, "helios_s7", b->rest);
    const Framed m2 = only_message(rewritten);
    auto b2 = parse_bind(m2.body);
    REQUIRE(b2.ok());
    CHECK(b2->statement == "helios_s7");
    CHECK(b2->portal == "p1");
    CHECK(b2->rest == b->rest);
  }
  SUBCASE("Parse re-addressed with write_parse_raw keeps the text and types") {
    std::string out;
    const int32_t types[] = {23, 25};
    write_parse(out, "client_stmt", "SELECT $1::int, $2", types);
    const Framed m = only_message(out);
    auto p = parse_parse(m.body);
    REQUIRE(p.ok());
    std::string_view rest = std::string_view(m.body).substr(p->statement.size() + 1);
    std::string rewritten;
    write_parse_raw(rewritten, "hp_7", rest);
    const Framed m2 = only_message(rewritten);
    auto p2 = parse_parse(m2.body);
    REQUIRE(p2.ok());
    CHECK(p2->statement == "hp_7");
    CHECK(p2->query == p->query);
    CHECK(p2->param_count == 2);
  }
  SUBCASE("a rewritten prefix whose rest streams on: end(streamed) counts it in the length") {
    // What the relay does with a long Query: its own copy of the first bytes, the rest of the
    // body forwarded as it arrives. The two together must frame as the original message.
    std::string original;
    write_query(original, "SELECT 'a long statement'");
    const Framed m = only_message(original);
    std::string_view body = m.body;
    std::string out;
    MessageWriter w(out);
    w.begin(fe::kQuery).put_bytes(body.substr(0, 7));
    w.end(body.size() - 7);
    out += body.substr(7);
    CHECK(out == original);
  }
  SUBCASE("Describe, Close, Execute, Query, PasswordMessage") {
    std::string out;
    write_describe(out, kTargetStatement, "s1");
    write_close(out, kTargetPortal, "");
    write_execute(out, "p1", 100);
    write_query(out, "SELECT 1; SELECT 2");
    write_password_message(out, "md5abc");
    std::vector<Framed> msgs;
    REQUIRE(take_messages(out, msgs) == out.size());
    REQUIRE(msgs.size() == 5);
    CHECK(msgs[0].type == fe::kDescribe);
    auto d = parse_describe(msgs[0].body);
    REQUIRE(d.ok());
    CHECK(d->kind == 'S');
    CHECK(d->name == "s1");
    CHECK(msgs[1].type == fe::kClose);
    auto c = parse_close(msgs[1].body);
    REQUIRE(c.ok());
    CHECK(c->kind == 'P');
    CHECK(c->name.empty());
    auto e = parse_execute(msgs[2].body);
    REQUIRE(e.ok());
    CHECK(e->portal == "p1");
    CHECK(e->max_rows == 100);
    auto q = parse_query(msgs[3].body);
    REQUIRE(q.ok());
    CHECK(*q == "SELECT 1; SELECT 2");
    auto pw = parse_password_message(msgs[4].body);
    REQUIRE(pw.ok());
    CHECK(*pw == "md5abc");
  }
  SUBCASE("SASLInitialResponse with data, and with length -1") {
    std::string out;
    write_sasl_initial_response(out, "SCRAM-SHA-256", "n,,n=,r=abc");
    const Framed m = only_message(out);
    CHECK(m.type == fe::kPassword);
    auto s = parse_sasl_initial_response(m.body);
    REQUIRE(s.ok());
    CHECK(s->mechanism == "SCRAM-SHA-256");
    CHECK(s->has_data);
    CHECK(s->data == "n,,n=,r=abc");

    auto none = parse_sasl_initial_response("SCRAM-SHA-256\0\xff\xff\xff\xff"sv);
    REQUIRE(none.ok());
    CHECK_FALSE(none->has_data);
    CHECK_FALSE(parse_sasl_initial_response("SCRAM-SHA-256\0\xff\xff\xff\xfe"sv).ok());
    CHECK_FALSE(parse_sasl_initial_response("SCRAM-SHA-256\0\0\0\0\5abc"sv).ok());
    CHECK_FALSE(parse_sasl_initial_response("\0\0\0\0\0"sv).ok());  // empty mechanism

    std::string resp;
    write_sasl_response(resp, "c=biws,r=abc,p=xyz");
    CHECK(only_message(resp).body == "c=biws,r=abc,p=xyz");
  }
}

TEST_CASE("semantic checks beyond framing") {
  CHECK_FALSE(parse_ready_for_query("X"sv).ok());
  CHECK_FALSE(parse_describe("Xname\0"sv).ok());
  CHECK_FALSE(parse_close("\0\0"sv).ok());
  CHECK_FALSE(parse_parameter_status("\0value\0"sv).ok());
  // DataRow: a length below -1, a count larger than the data, a negative count
  CHECK_FALSE(parse_data_row("\0\1\xff\xff\xff\xfe"sv).ok());
  CHECK_FALSE(parse_data_row("\0\2\0\0\0\1x"sv).ok());
  CHECK_FALSE(parse_data_row("\xff\xff"sv).ok());
  // RowDescription claiming 30000 columns in a few bytes is refused before any reservation
  CHECK_FALSE(parse_row_description("\x75\x30"
                                    "a\0"sv)
                  .ok());
  // Bind with 2 format codes but 1 parameter (PostgreSQL refuses it too)
  CHECK_FALSE(parse_bind("\0\0\0\2\0\0\0\0\0\1\0\0\0\0\0\0"sv).ok());
  // Bind with one format code for all parameters is fine
  CHECK(parse_bind("\0\0\0\1\0\1\0\2\0\0\0\0\0\0\0\0\0\0"sv).ok());
  // Parse with a negative parameter count
  CHECK_FALSE(parse_parse("s\0q\0\xff\xff"sv).ok());
  // NegotiateProtocolVersion with a count larger than the body
  CHECK_FALSE(parse_negotiate_protocol_version("\0\0\0\0\x7f\xff\xff\xff"sv).ok());
}

namespace {

// One valid body per parser, and the parser, for the truncation and garbage sweeps.
struct Case {
  const char* name;
  std::string body;
  std::function<bool(std::string_view)> parse;
};

template <typename F>
std::function<bool(std::string_view)> ok_of(F f) {
  return [f](std::string_view b) { return f(b).ok(); };
}

std::vector<Case> valid_cases() {
  auto body_of = [](auto write) {
    std::string out;
    write(out);
    return only_message(out).body;
  };
  std::vector<Case> cases;
  cases.push_back({"ErrorResponse", body_of([](std::string& o) {
                     write_error_response(o, "ERROR", "42601", "syntax error", "d", "h");
                   }),
                   ok_of(parse_error_response)});
  cases.push_back({"ParameterStatus",
                   body_of([](std::string& o) { write_parameter_status(o, "TimeZone", "UTC"); }),
                   ok_of(parse_parameter_status)});
  cases.push_back({"BackendKeyData",
                   body_of([](std::string& o) { write_backend_key_data(o, 1, 2); }),
                   ok_of(parse_backend_key_data)});
  cases.push_back({"AuthenticationMD5", body_of([](std::string& o) {
                     write_auth_md5_password(o, {1, 2, 3, 4});
                   }),
                   ok_of(parse_authentication)});
  cases.push_back({"AuthenticationSASL", body_of([](std::string& o) {
                     std::vector<std::string_view> m = {"SCRAM-SHA-256"};
                     write_auth_sasl(o, m);
                   }),
                   ok_of(parse_authentication)});
  cases.push_back({"ReadyForQuery", body_of([](std::string& o) { write_ready_for_query(o, 'T'); }),
                   ok_of(parse_ready_for_query)});
  cases.push_back({"CommandComplete",
                   body_of([](std::string& o) { write_command_complete(o, "SELECT 1"); }),
                   ok_of(parse_command_complete)});
  cases.push_back({"NegotiateProtocolVersion", body_of([](std::string& o) {
                     std::vector<std::string> opts = {"_pq_.a"};
                     write_negotiate_protocol_version(o, 0, opts);
                   }),
                   ok_of(parse_negotiate_protocol_version)});
  cases.push_back({"RowDescription", body_of([](std::string& o) {
                     std::vector<std::string_view> c = {"a", "b"};
                     write_row_description(o, c);
                   }),
                   ok_of(parse_row_description)});
  cases.push_back({"DataRow", body_of([](std::string& o) {
                     std::vector<std::optional<std::string_view>> v = {"x"sv, std::nullopt};
                     write_data_row(o, v);
                   }),
                   ok_of(parse_data_row)});
  cases.push_back(
      {"Query", body_of([](std::string& o) { write_query(o, "SELECT 1"); }), ok_of(parse_query)});
  cases.push_back({"Parse", body_of([](std::string& o) {
                     std::vector<int32_t> t = {23};
                     write_parse(o, "s", "SELECT $1", t);
                   }),
                   ok_of(parse_parse)});
  cases.push_back({"Bind", body_of([](std::string& o) {
                     std::vector<std::optional<std::string_view>> p = {"1"sv, std::nullopt};
                     write_bind(o, "", "s", p);
                   }),
                   ok_of(parse_bind)});
  cases.push_back({"Describe", body_of([](std::string& o) { write_describe(o, 'S', "s"); }),
                   ok_of(parse_describe)});
  cases.push_back(
      {"Close", body_of([](std::string& o) { write_close(o, 'P', "p"); }), ok_of(parse_close)});
  cases.push_back(
      {"Execute", body_of([](std::string& o) { write_execute(o, "", 0); }), ok_of(parse_execute)});
  cases.push_back({"PasswordMessage",
                   body_of([](std::string& o) { write_password_message(o, "pw"); }),
                   ok_of(parse_password_message)});
  cases.push_back({"SASLInitialResponse", body_of([](std::string& o) {
                     write_sasl_initial_response(o, "SCRAM-SHA-256", "n,,n=,r=x");
                   }),
                   ok_of(parse_sasl_initial_response)});
  return cases;
}

}  // namespace

TEST_CASE("every proper prefix of a valid body is refused, and so are trailing bytes") {
  for (const Case& c : valid_cases()) {
    CAPTURE(c.name);
    REQUIRE(c.parse(c.body));
    for (size_t n = 0; n < c.body.size(); ++n) {
      CAPTURE(n);
      CHECK_FALSE(c.parse(std::string_view(c.body).substr(0, n)));
    }
    CHECK_FALSE(c.parse(c.body + "\x01"));
  }
}

TEST_CASE("random garbage never crashes a parser, and what parses re-encodes identically") {
  std::mt19937 rng(20240611);  // fixed seed: reproducible
  // Bytes that hit the interesting branches: NUL terminators, 0xff (negative lengths), small
  // counts, kind letters and printable text.
  const std::string alphabet("\0\0\0\x01\x02\xff\x7fSPEIT abc"sv);
  std::uniform_int_distribution<size_t> len_dist(0, 40);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  const std::vector<Case> cases = valid_cases();
  size_t accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string body(len_dist(rng), '\0');
    for (char& ch : body) ch = alphabet[pick(rng)];
    for (const Case& c : cases) accepted += c.parse(body) ? 1 : 0;

    // Canonical encodings: a successful parse written back gives the same bytes.
    if (auto q = parse_query(body); q.ok()) {
      std::string out;
      write_query(out, *q);
      CHECK(only_message(out).body == body);
    }
    if (auto p = parse_parameter_status(body); p.ok()) {
      std::string out;
      write_parameter_status(out, p->name, p->value);
      CHECK(only_message(out).body == body);
    }
    if (auto d = parse_describe(body); d.ok()) {
      std::string out;
      write_describe(out, d->kind, d->name);
      CHECK(only_message(out).body == body);
    }
    if (auto e = parse_execute(body); e.ok()) {
      std::string out;
      write_execute(out, e->portal, e->max_rows);
      CHECK(only_message(out).body == body);
    }
    if (auto b = parse_bind(body); b.ok()) {
      std::string out;
      write_bind_raw(out, b->portal, b->statement, b->rest);
      CHECK(only_message(out).body == body);
    }
    if (auto p = parse_parse(body); p.ok()) {
      std::vector<int32_t> oids;
      for (int i = 0; i < p->param_count; ++i) oids.push_back(p->param_type(i));
      std::string out;
      write_parse(out, p->statement, p->query, oids);
      CHECK(only_message(out).body == body);
    }
  }
  // The alphabet is biased so that some garbage is valid: the sweep exercised success paths too.
  CHECK(accepted > 0);
}

TEST_CASE("a backend response stream parses the same whether merged or split at any byte") {
  // What PostgreSQL sends for an extended-protocol query returning two rows.
  std::string stream;
  write_parse_complete(stream);
  write_bind_complete(stream);
  std::vector<std::string_view> cols = {"id", "name"};
  write_row_description(stream, cols);
  std::vector<std::optional<std::string_view>> r1 = {"1"sv, "alice"sv};
  std::vector<std::optional<std::string_view>> r2 = {"2"sv, std::nullopt};
  write_data_row(stream, r1);
  write_data_row(stream, r2);
  write_command_complete(stream, "SELECT 2");
  write_notice_response(stream, "WARNING", "01000", "careful");
  write_ready_for_query(stream, kTxInBlock);

  auto summarize = [](const std::vector<Framed>& msgs) {
    std::string s;
    for (const Framed& m : msgs) {
      s += m.type;
      switch (m.type) {
        case be::kDataRow: {
          auto row = parse_data_row(m.body);
          REQUIRE(row.ok());
          for (const auto& v : *row) s += v ? std::string(*v) : std::string("<null>");
          break;
        }
        case be::kCommandComplete:
          s += std::string(*parse_command_complete(m.body));
          break;
        case be::kReadyForQuery:
          s += *parse_ready_for_query(m.body);
          break;
        case be::kNoticeResponse:
          s += parse_error_response(m.body)->message;
          break;
        case be::kRowDescription:
          s += std::to_string(parse_row_description(m.body)->size());
          break;
        default:
          CHECK(m.body.empty());
          break;
      }
      s += '|';
    }
    return s;
  };

  std::vector<Framed> merged;
  REQUIRE(take_messages(stream, merged) == stream.size());
  const std::string expected = summarize(merged);
  CHECK(expected == "1|2|T2|D1alice|D2<null>|CSELECT 2|Ncareful|ZT|");

  for (size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    CAPTURE(chunk);
    std::string buffer;
    std::vector<Framed> got;
    for (size_t off = 0; off < stream.size(); off += chunk) {
      buffer += stream.substr(off, chunk);
      buffer.erase(0, take_messages(buffer, got));
    }
    CHECK(buffer.empty());
    CHECK(summarize(got) == expected);
  }
}
