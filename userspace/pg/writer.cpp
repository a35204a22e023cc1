#include "pg/writer.h"

#include <cassert>
#include <cstring>

namespace helios::pg {

namespace {

void append_be32(std::string& out, uint32_t v) {
  const char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  out.append(b, 4);
}

std::string_view until_nul(std::string_view s) {
  const size_t nul = s.find('\0');
  return nul == std::string_view::npos ? s : s.substr(0, nul);
}

// A message with no body: type byte + length 4.
void write_empty(std::string& out, char type) {
  out.push_back(type);
  append_be32(out, 4);
}

void write_fields(std::string& out, char type, std::string_view severity,
                  std::string_view severity_v, std::string_view sqlstate, std::string_view message,
                  std::string_view detail, std::string_view hint) {
  MessageWriter w(out);
  w.begin(type);
  w.put_u8(field::kSeverity).put_cstring(severity);
  w.put_u8(field::kSeverityNonLocalized).put_cstring(severity_v.empty() ? severity : severity_v);
  w.put_u8(field::kCode).put_cstring(sqlstate);
  w.put_u8(field::kMessage).put_cstring(message);
  if (!detail.empty()) w.put_u8(field::kDetail).put_cstring(detail);
  if (!hint.empty()) w.put_u8(field::kHint).put_cstring(hint);
  w.put_u8(0);
  w.end();
}

void write_all_fields(std::string& out, char type, const ErrorFields& f) {
  MessageWriter w(out);
  w.begin(type);
  auto put = [&w](char t, std::string_view v) {
    if (!v.empty()) w.put_u8(uint8_t(t)).put_cstring(v);
  };
  put(field::kSeverity, f.severity);
  put(field::kSeverityNonLocalized, f.effective_severity());
  put(field::kCode, f.sqlstate);
  put(field::kMessage, f.message);
  put(field::kDetail, f.detail);
  put(field::kHint, f.hint);
  put(field::kPosition, f.position);
  put(field::kWhere, f.where);
  for (const auto& [t, v] : f.other) {
    if (t != 0) put(t, v);
  }
  w.put_u8(0);
  w.end();
}

void write_auth(std::string& out, int32_t code, std::string_view payload = {}) {
  MessageWriter w(out);
  w.begin(be::kAuthentication).put_i32(code).put_bytes(payload);
  w.end();
}

void write_name_message(std::string& out, char type, char kind, std::string_view name) {
  MessageWriter w(out);
  w.begin(type).put_u8(uint8_t(kind)).put_cstring(name);
  w.end();
}

}  // namespace

// ---- MessageWriter ----

MessageWriter& MessageWriter::begin(char type) {
  assert(start_ == kNone && "MessageWriter::begin while a message is open");
  out_.push_back(type);
  return begin_untyped();
}

MessageWriter& MessageWriter::begin_untyped() {
  assert(start_ == kNone && "MessageWriter::begin while a message is open");
  start_ = out_.size();
  out_.append(kLengthSize, '\0');
  return *this;
}

MessageWriter& MessageWriter::put_u8(uint8_t v) {
  out_.push_back(char(v));
  return *this;
}

MessageWriter& MessageWriter::put_i16(int16_t v) {
  const uint16_t u = uint16_t(v);
  const char b[2] = {char(u >> 8), char(u)};
  out_.append(b, 2);
  return *this;
}

MessageWriter& MessageWriter::put_i32(int32_t v) {
  append_be32(out_, uint32_t(v));
  return *this;
}

MessageWriter& MessageWriter::put_cstring(std::string_view s) {
  out_.append(until_nul(s));
  out_.push_back('\0');
  return *this;
}

MessageWriter& MessageWriter::put_bytes(std::string_view bytes) {
  out_.append(bytes);
  return *this;
}

MessageWriter& MessageWriter::put_bytes(std::span<const uint8_t> bytes) {
  out_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return *this;
}

void MessageWriter::end(size_t streamed) {
  assert(start_ != kNone && "MessageWriter::end without begin");
  const uint32_t len = uint32_t(out_.size() - start_ + streamed);
  const char b[4] = {char(len >> 24), char(len >> 16), char(len >> 8), char(len)};
  std::memcpy(out_.data() + start_, b, 4);
  start_ = kNone;
}

// ---- Backend messages ----

void write_error_response(std::string& out, std::string_view severity, std::string_view sqlstate,
                          std::string_view message, std::string_view detail,
                          std::string_view hint) {
  write_fields(out, be::kErrorResponse, severity, {}, sqlstate, message, detail, hint);
}

void write_notice_response(std::string& out, std::string_view severity, std::string_view sqlstate,
                           std::string_view message, std::string_view detail,
                           std::string_view hint) {
  write_fields(out, be::kNoticeResponse, severity, {}, sqlstate, message, detail, hint);
}

void write_error_response(std::string& out, const ErrorFields& f) {
  write_all_fields(out, be::kErrorResponse, f);
}

void write_notice_response(std::string& out, const ErrorFields& f) {
  write_all_fields(out, be::kNoticeResponse, f);
}

void write_parameter_status(std::string& out, std::string_view name, std::string_view value) {
  MessageWriter w(out);
  w.begin(be::kParameterStatus).put_cstring(name).put_cstring(value);
  w.end();
}

void write_backend_key_data(std::string& out, int32_t process_id, int32_t secret_key) {
  MessageWriter w(out);
  w.begin(be::kBackendKeyData).put_i32(process_id).put_i32(secret_key);
  w.end();
}

void write_ready_for_query(std::string& out, char tx_status) {
  MessageWriter w(out);
  w.begin(be::kReadyForQuery).put_u8(uint8_t(tx_status));
  w.end();
}

void write_auth_ok(std::string& out) {
  write_auth(out, kAuthOk);
}

void write_auth_cleartext_password(std::string& out) {
  write_auth(out, kAuthCleartext);
}

void write_auth_md5_password(std::string& out, std::array<uint8_t, 4> salt) {
  write_auth(out, kAuthMd5, std::string_view(reinterpret_cast<const char*>(salt.data()), 4));
}

void write_auth_sasl(std::string& out, std::span<const std::string_view> mechanisms) {
  MessageWriter w(out);
  w.begin(be::kAuthentication).put_i32(kAuthSasl);
  for (std::string_view m : mechanisms) {
    if (!until_nul(m).empty()) w.put_cstring(m);  // an empty name would end the list early
  }
  w.put_u8(0);
  w.end();
}

void write_auth_sasl_continue(std::string& out, std::string_view data) {
  write_auth(out, kAuthSaslContinue, data);
}

void write_auth_sasl_final(std::string& out, std::string_view data) {
  write_auth(out, kAuthSaslFinal, data);
}

void write_negotiate_protocol_version(std::string& out, int32_t newest_version,
                                      std::span<const std::string> unsupported_options) {
  MessageWriter w(out);
  w.begin(be::kNegotiateProtocolVersion)
      .put_i32(newest_version)
      .put_i32(int32_t(unsupported_options.size()));
  for (const std::string& o : unsupported_options) w.put_cstring(o);
  w.end();
}

void write_command_complete(std::string& out, std::string_view tag) {
  MessageWriter w(out);
  w.begin(be::kCommandComplete).put_cstring(tag);
  w.end();
}

void write_empty_query_response(std::string& out) {
  write_empty(out, be::kEmptyQuery);
}
void write_parse_complete(std::string& out) {
  write_empty(out, be::kParseComplete);
}
void write_bind_complete(std::string& out) {
  write_empty(out, be::kBindComplete);
}
void write_close_complete(std::string& out) {
  write_empty(out, be::kCloseComplete);
}
void write_no_data(std::string& out) {
  write_empty(out, be::kNoData);
}

void write_row_description(std::string& out, std::span<const std::string_view> column_names) {
  MessageWriter w(out);
  w.begin(be::kRowDescription).put_i16(int16_t(column_names.size()));
  for (std::string_view name : column_names) {
    w.put_cstring(name)
        .put_i32(0)         // table OID: not a table column
        .put_i16(0)         // column attribute number
        .put_i32(kOidText)  // data type
        .put_i16(-1)        // typlen: varlena
        .put_i32(-1)        // typmod
        .put_i16(kFormatText);
  }
  w.end();
}

void write_data_row(std::string& out, std::span<const std::optional<std::string_view>> values) {
  MessageWriter w(out);
  w.begin(be::kDataRow).put_i16(int16_t(values.size()));
  for (const auto& v : values) {
    if (!v) {
      w.put_i32(-1);
    } else {
      w.put_i32(int32_t(v->size())).put_bytes(*v);
    }
  }
  w.end();
}

// ---- Frontend messages ----

void write_startup_message(std::string& out,
                           std::span<const std::pair<std::string, std::string>> params,
                           int32_t protocol) {
  MessageWriter w(out);
  w.begin_untyped().put_i32(protocol);
  for (const auto& [name, value] : params) {
    if (until_nul(name).empty()) continue;  // an empty name would terminate the list
    w.put_cstring(name).put_cstring(value);
  }
  w.put_u8(0);
  w.end();
}

void write_ssl_request(std::string& out) {
  MessageWriter w(out);
  w.begin_untyped().put_i32(kSslRequestCode);
  w.end();
}

void write_gss_enc_request(std::string& out) {
  MessageWriter w(out);
  w.begin_untyped().put_i32(kGssEncRequestCode);
  w.end();
}

void write_cancel_request(std::string& out, int32_t process_id, int32_t secret_key) {
  MessageWriter w(out);
  w.begin_untyped().put_i32(kCancelRequestCode).put_i32(process_id).put_i32(secret_key);
  w.end();
}

void write_password_message(std::string& out, std::string_view password) {
  MessageWriter w(out);
  w.begin(fe::kPassword).put_cstring(password);
  w.end();
}

void write_sasl_initial_response(std::string& out, std::string_view mechanism,
                                 std::string_view data) {
  MessageWriter w(out);
  w.begin(fe::kPassword).put_cstring(mechanism).put_i32(int32_t(data.size())).put_bytes(data);
  w.end();
}

void write_sasl_response(std::string& out, std::string_view data) {
  MessageWriter w(out);
  w.begin(fe::kPassword).put_bytes(data);
  w.end();
}

void write_query(std::string& out, std::string_view sql) {
  MessageWriter w(out);
  w.begin(fe::kQuery).put_cstring(sql);
  w.end();
}

void write_terminate(std::string& out) {
  write_empty(out, fe::kTerminate);
}

void write_parse(std::string& out, std::string_view statement, std::string_view query,
                 std::span<const int32_t> param_type_oids) {
  MessageWriter w(out);
  w.begin(fe::kParse).put_cstring(statement).put_cstring(query);
  w.put_i16(int16_t(param_type_oids.size()));
  for (int32_t oid : param_type_oids) w.put_i32(oid);
  w.end();
}

void write_bind(std::string& out, std::string_view portal, std::string_view statement,
                std::span<const std::optional<std::string_view>> text_params) {
  MessageWriter w(out);
  w.begin(fe::kBind).put_cstring(portal).put_cstring(statement);
  w.put_i16(0);  // no parameter format codes: all text
  w.put_i16(int16_t(text_params.size()));
  for (const auto& p : text_params) {
    if (!p) {
      w.put_i32(-1);
    } else {
      w.put_i32(int32_t(p->size())).put_bytes(*p);
    }
  }
  w.put_i16(0);  // no result format codes: all text
  w.end();
}

void write_parse_raw(std::string& out, std::string_view statement, std::string_view rest) {
  MessageWriter w(out);
  w.begin(fe::kParse).put_cstring(statement).put_bytes(rest);
  w.end();
}

void write_bind_raw(std::string& out, std::string_view portal, std::string_view statement,
                    std::string_view rest) {
  MessageWriter w(out);
  w.begin(fe::kBind).put_cstring(portal).put_cstring(statement).put_bytes(rest);
  w.end();
}

void write_describe(std::string& out, char kind, std::string_view name) {
  write_name_message(out, fe::kDescribe, kind, name);
}

void write_execute(std::string& out, std::string_view portal, int32_t max_rows) {
  MessageWriter w(out);
  w.begin(fe::kExecute).put_cstring(portal).put_i32(max_rows);
  w.end();
}

void write_close(std::string& out, char kind, std::string_view name) {
  write_name_message(out, fe::kClose, kind, name);
}

void write_sync(std::string& out) {
  write_empty(out, fe::kSync);
}
void write_flush(std::string& out) {
  write_empty(out, fe::kFlush);
}

}  // namespace helios::pg
