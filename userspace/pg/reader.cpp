#include "pg/reader.h"

#include <cerrno>

#include "pg/protocol.h"

namespace helios::pg {

namespace {

Error malformed(std::string_view what, std::string_view why = {}) {
  std::string m = "malformed ";
  m += what;
  m += " message";
  if (!why.empty()) {
    m += ": ";
    m += why;
  }
  return Error{EPROTO, std::move(m)};
}

// Common ending of every strict parser: all reads succeeded and nothing is left over.
Status finish(const MessageReader& r, std::string_view what) {
  if (!r.ok()) return malformed(what, "truncated");
  if (!r.at_end()) return malformed(what, "unexpected bytes after the last field");
  return {};
}

Result<TargetMessage> parse_target(std::string_view body, std::string_view what) {
  MessageReader r(body);
  TargetMessage m;
  m.kind = char(r.get_u8());
  m.name = r.get_cstring();
  if (Status s = finish(r, what); !s) return s.error();
  if (m.kind != kTargetStatement && m.kind != kTargetPortal) {
    return malformed(what, "kind must be 'S' or 'P'");
  }
  return m;
}

}  // namespace

// ---- Backend messages ----

Result<ErrorFields> parse_error_response(std::string_view body) {
  MessageReader r(body);
  ErrorFields f;
  while (r.ok()) {
    const char type = char(r.get_u8());
    if (!r.ok() || type == 0) break;
    const std::string_view value = r.get_cstring();
    if (!r.ok()) break;
    switch (type) {
      case field::kSeverity:
        f.severity = value;
        break;
      case field::kSeverityNonLocalized:
        f.severity_nonlocalized = value;
        break;
      case field::kCode:
        f.sqlstate = value;
        break;
      case field::kMessage:
        f.message = value;
        break;
      case field::kDetail:
        f.detail = value;
        break;
      case field::kHint:
        f.hint = value;
        break;
      case field::kPosition:
        f.position = value;
        break;
      case field::kWhere:
        f.where = value;
        break;
      default:
        f.other.emplace_back(type, std::string(value));
        break;
    }
  }
  if (Status s = finish(r, "ErrorResponse"); !s) return s.error();
  return f;
}

Result<ParameterStatus> parse_parameter_status(std::string_view body) {
  MessageReader r(body);
  ParameterStatus p;
  p.name = r.get_cstring();
  p.value = r.get_cstring();
  if (Status s = finish(r, "ParameterStatus"); !s) return s.error();
  if (p.name.empty()) return malformed("ParameterStatus", "empty parameter name");
  return p;
}

Result<BackendKeyData> parse_backend_key_data(std::string_view body) {
  MessageReader r(body);
  BackendKeyData k;
  k.process_id = r.get_i32();
  k.secret_key = r.get_i32();
  if (Status s = finish(r, "BackendKeyData"); !s) return s.error();
  return k;
}

Result<std::vector<std::string_view>> parse_sasl_mechanisms(std::string_view payload) {
  MessageReader r(payload);
  std::vector<std::string_view> names;
  while (true) {
    const std::string_view name = r.get_cstring();
    if (!r.ok() || name.empty()) break;
    names.push_back(name);
  }
  if (Status s = finish(r, "AuthenticationSASL"); !s) return s.error();
  if (names.empty()) return malformed("AuthenticationSASL", "no mechanism offered");
  return names;
}

Result<AuthenticationRequest> parse_authentication(std::string_view body) {
  MessageReader r(body);
  AuthenticationRequest a;
  a.code = r.get_i32();
  a.payload = r.get_rest();
  if (!r.ok()) return malformed("Authentication", "truncated");
  switch (a.code) {
    case kAuthOk:
    case kAuthCleartext:
      if (!a.payload.empty()) return malformed("Authentication", "unexpected payload");
      break;
    case kAuthMd5:
      if (a.payload.size() != 4) return malformed("Authentication", "MD5 salt must be 4 bytes");
      break;
    case kAuthSasl:
      if (auto m = parse_sasl_mechanisms(a.payload); !m) return m.error();
      break;
    default:  // SASL data, GSS data, or a method the caller will refuse by its code
      break;
  }
  return a;
}

Result<char> parse_ready_for_query(std::string_view body) {
  MessageReader r(body);
  const char status = char(r.get_u8());
  if (Status s = finish(r, "ReadyForQuery"); !s) return s.error();
  if (!is_valid_tx_status(status)) {
    return malformed("ReadyForQuery", "transaction status must be 'I', 'T' or 'E'");
  }
  return status;
}

Result<std::string_view> parse_command_complete(std::string_view body) {
  MessageReader r(body);
  const std::string_view tag = r.get_cstring();
  if (Status s = finish(r, "CommandComplete"); !s) return s.error();
  return tag;
}

Result<NegotiateProtocolVersion> parse_negotiate_protocol_version(std::string_view body) {
  MessageReader r(body);
  NegotiateProtocolVersion n;
  n.newest_version = r.get_i32();
  const int32_t count = r.get_i32();
  if (r.ok() && (count < 0 || size_t(count) > r.remaining())) {
    return malformed("NegotiateProtocolVersion", "bad option count");
  }
  for (int32_t i = 0; r.ok() && i < count; ++i) n.unsupported_options.push_back(r.get_cstring());
  if (Status s = finish(r, "NegotiateProtocolVersion"); !s) return s.error();
  return n;
}

Result<std::vector<RowDescriptionColumn>> parse_row_description(std::string_view body) {
  MessageReader r(body);
  const int16_t count = r.get_i16();
  if (r.ok() && count < 0) return malformed("RowDescription", "negative column count");
  std::vector<RowDescriptionColumn> cols;
  // Each column takes at least 19 bytes; do not trust the count for the reservation.
  if (r.ok() && size_t(count) * 19 > r.remaining()) return malformed("RowDescription", "truncated");
  cols.reserve(size_t(count > 0 ? count : 0));
  for (int i = 0; r.ok() && i < count; ++i) {
    RowDescriptionColumn c;
    c.name = r.get_cstring();
    c.table_oid = r.get_i32();
    c.column = r.get_i16();
    c.type_oid = r.get_i32();
    c.type_size = r.get_i16();
    c.type_modifier = r.get_i32();
    c.format = r.get_i16();
    cols.push_back(c);
  }
  if (Status s = finish(r, "RowDescription"); !s) return s.error();
  return cols;
}

Result<std::vector<std::optional<std::string_view>>> parse_data_row(std::string_view body) {
  MessageReader r(body);
  const int16_t count = r.get_i16();
  if (r.ok() && count < 0) return malformed("DataRow", "negative column count");
  if (r.ok() && size_t(count) * 4 > r.remaining()) return malformed("DataRow", "truncated");
  std::vector<std::optional<std::string_view>> values;
  values.reserve(size_t(count > 0 ? count : 0));
  for (int i = 0; r.ok() && i < count; ++i) {
    const int32_t len = r.get_i32();
    if (!r.ok()) break;
    if (len == -1) {
      values.emplace_back(std::nullopt);
    } else if (len < 0) {
      return malformed("DataRow", "negative value length");
    } else {
      values.emplace_back(r.get_bytes(size_t(len)));
    }
  }
  if (Status s = finish(r, "DataRow"); !s) return s.error();
  return values;
}

// ---- Frontend messages ----

Result<std::string_view> parse_query(std::string_view body) {
  MessageReader r(body);
  const std::string_view sql = r.get_cstring();
  if (Status s = finish(r, "Query"); !s) return s.error();
  return sql;
}

int32_t ParseMessage::param_type(int i) const {
  if (i < 0 || i >= param_count || param_types_raw.size() < size_t(i + 1) * 4) return 0;
  MessageReader r(param_types_raw.substr(size_t(i) * 4, 4));
  return r.get_i32();
}

Result<ParseMessage> parse_parse(std::string_view body) {
  MessageReader r(body);
  ParseMessage p;
  p.statement = r.get_cstring();
  p.query = r.get_cstring();
  p.param_count = r.get_i16();
  if (r.ok() && p.param_count < 0) return malformed("Parse", "negative parameter count");
  p.param_types_raw = r.get_bytes(size_t(p.param_count > 0 ? p.param_count : 0) * 4);
  if (Status s = finish(r, "Parse"); !s) return s.error();
  return p;
}

Result<BindMessage> parse_bind(std::string_view body) {
  MessageReader r(body);
  BindMessage b;
  b.portal = r.get_cstring();
  b.statement = r.get_cstring();
  b.rest = r.peek_rest();
  const int16_t nformats = r.get_i16();
  if (r.ok() && nformats < 0) return malformed("Bind", "negative format count");
  r.get_bytes(size_t(nformats > 0 ? nformats : 0) * 2);
  b.param_count = r.get_i16();
  if (r.ok() && b.param_count < 0) return malformed("Bind", "negative parameter count");
  if (r.ok() && nformats > 1 && nformats != b.param_count) {
    return malformed("Bind", "parameter format count matches neither 0, 1 nor the parameters");
  }
  for (int i = 0; r.ok() && i < b.param_count; ++i) {
    const int32_t len = r.get_i32();
    if (!r.ok()) break;
    if (len < -1) return malformed("Bind", "negative parameter length");
    if (len > 0) r.get_bytes(size_t(len));
  }
  const int16_t nresults = r.get_i16();
  if (r.ok() && nresults < 0) return malformed("Bind", "negative result format count");
  r.get_bytes(size_t(nresults > 0 ? nresults : 0) * 2);
  if (Status s = finish(r, "Bind"); !s) return s.error();
  return b;
}

Result<TargetMessage> parse_describe(std::string_view body) {
  return parse_target(body, "Describe");
}

Result<TargetMessage> parse_close(std::string_view body) {
  return parse_target(body, "Close");
}

Result<ExecuteMessage> parse_execute(std::string_view body) {
  MessageReader r(body);
  ExecuteMessage e;
  e.portal = r.get_cstring();
  e.max_rows = r.get_i32();
  if (Status s = finish(r, "Execute"); !s) return s.error();
  return e;
}

Result<std::string_view> parse_password_message(std::string_view body) {
  MessageReader r(body);
  const std::string_view password = r.get_cstring();
  if (Status s = finish(r, "PasswordMessage"); !s) return s.error();
  return password;
}

Result<SaslInitialResponse> parse_sasl_initial_response(std::string_view body) {
  MessageReader r(body);
  SaslInitialResponse m;
  m.mechanism = r.get_cstring();
  const int32_t len = r.get_i32();
  if (r.ok() && len < -1) return malformed("SASLInitialResponse", "negative data length");
  if (len >= 0) {
    m.data = r.get_bytes(size_t(len));
    m.has_data = true;
  }
  if (Status s = finish(r, "SASLInitialResponse"); !s) return s.error();
  if (m.mechanism.empty()) return malformed("SASLInitialResponse", "empty mechanism name");
  return m;
}

}  // namespace helios::pg
