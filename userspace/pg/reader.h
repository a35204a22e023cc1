// Message decoding (no I/O). MessageReader reads the body of one message (the bytes after the
// type byte and the int32 length). Every get_* is bounds-checked: a read past the end, or a
// C string without its NUL, sets a sticky error flag and returns an empty value; the caller
// checks ok() once at the end instead of after every read. Nothing here throws.
//
// The parse_* functions decode one whole body and are strict: a missing field, a bad count or
// bytes left over after the last field are all errors (code EPROTO) naming the message. The
// std::string_view members of the results point into the body passed in and live as long as it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "pg/error_fields.h"

namespace helios::pg {

class MessageReader {
 public:
  MessageReader() = default;
  explicit MessageReader(std::string_view body) : data_(body.data()), size_(body.size()) {}
  explicit MessageReader(std::span<const uint8_t> body)
      : data_(reinterpret_cast<const char*>(body.data())), size_(body.size()) {}

  uint8_t get_u8() {
    if (!need(1)) return 0;
    return uint8_t(data_[pos_++]);
  }
  int16_t get_i16() {
    if (!need(2)) return 0;
    const auto* p = reinterpret_cast<const uint8_t*>(data_ + pos_);
    pos_ += 2;
    return int16_t(uint16_t(p[0] << 8 | p[1]));
  }
  int32_t get_i32() {
    if (!need(4)) return 0;
    const auto* p = reinterpret_cast<const uint8_t*>(data_ + pos_);
    pos_ += 4;
    return int32_t(uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]);
  }
  // A NUL-terminated string; the NUL is consumed but not part of the result.
  std::string_view get_cstring() {
    if (error_) return {};
    const std::string_view rest(data_ + pos_, size_ - pos_);
    const size_t nul = rest.find('\0');
    if (nul == std::string_view::npos) {
      error_ = true;
      return {};
    }
    pos_ += nul + 1;
    return rest.substr(0, nul);
  }
  std::string_view get_bytes(size_t n) {
    if (!need(n)) return {};
    std::string_view v(data_ + pos_, n);
    pos_ += n;
    return v;
  }
  // Everything not read yet (consumes it).
  std::string_view get_rest() {
    if (error_) return {};
    std::string_view v(data_ + pos_, size_ - pos_);
    pos_ = size_;
    return v;
  }
  // Everything not read yet, without consuming it.
  std::string_view peek_rest() const {
    return error_ ? std::string_view{} : std::string_view(data_ + pos_, size_ - pos_);
  }

  bool ok() const { return !error_; }
  bool at_end() const { return pos_ == size_; }
  size_t remaining() const { return size_ - pos_; }
  size_t position() const { return pos_; }
  // Marks the message malformed (for checks the reader cannot know about, e.g. a bad count).
  void fail() { error_ = true; }

 private:
  bool need(size_t n) {
    if (error_ || size_ - pos_ < n) {
      error_ = true;
      return false;
    }
    return true;
  }

  const char* data_ = nullptr;
  size_t size_ = 0;
  size_t pos_ = 0;
  bool error_ = false;
};

// ---- Backend messages the proxy inspects ----

// ErrorResponse 'E' / NoticeResponse 'N': (type byte, C string) fields up to a final NUL.
Result<ErrorFields> parse_error_response(std::string_view body);

struct ParameterStatus {
  std::string_view name;
  std::string_view value;
};
Result<ParameterStatus> parse_parameter_status(std::string_view body);

struct BackendKeyData {
  int32_t process_id = 0;
  int32_t secret_key = 0;
};
Result<BackendKeyData> parse_backend_key_data(std::string_view body);

// Authentication 'R': the request code and whatever follows it (salt, SASL data, ...). The
// payload is checked against the code: AuthOk/Cleartext carry none, MD5 exactly 4 bytes of salt,
// SASL a mechanism list.
struct AuthenticationRequest {
  int32_t code = 0;
  std::string_view payload;
};
Result<AuthenticationRequest> parse_authentication(std::string_view body);
// The mechanism names of an AuthenticationSASL payload.
Result<std::vector<std::string_view>> parse_sasl_mechanisms(std::string_view payload);

// ReadyForQuery 'Z': 'I', 'T' or 'E'.
Result<char> parse_ready_for_query(std::string_view body);

// CommandComplete 'C': the command tag, e.g. "SELECT 1", "BEGIN".
Result<std::string_view> parse_command_complete(std::string_view body);

struct NegotiateProtocolVersion {
  int32_t newest_version = 0;  // full version code, e.g. 196608 for 3.0
  std::vector<std::string_view> unsupported_options;
};
Result<NegotiateProtocolVersion> parse_negotiate_protocol_version(std::string_view body);

struct RowDescriptionColumn {
  std::string_view name;
  int32_t table_oid = 0;
  int16_t column = 0;
  int32_t type_oid = 0;
  int16_t type_size = 0;
  int32_t type_modifier = 0;
  int16_t format = 0;
};
Result<std::vector<RowDescriptionColumn>> parse_row_description(std::string_view body);
// DataRow 'D': one value per column, std::nullopt for NULL.
Result<std::vector<std::optional<std::string_view>>> parse_data_row(std::string_view body);

// ---- Frontend messages the proxy inspects ----

// Query 'Q': the SQL text.
Result<std::string_view> parse_query(std::string_view body);

// Parse 'P'. Parameter type OIDs stay in wire form; param_type(i) decodes one.
struct ParseMessage {
  std::string_view statement;  // "" = unnamed statement
  std::string_view query;
  int16_t param_count = 0;
  std::string_view param_types_raw;  // param_count * int32, network order
  int32_t param_type(int i) const;
};
Result<ParseMessage> parse_parse(std::string_view body);

// Bind 'B'. `rest` is everything after the statement name (format codes, values, result
// formats), validated, so write_bind_raw() can re-address the Bind to another statement name.
struct BindMessage {
  std::string_view portal;     // "" = unnamed portal
  std::string_view statement;  // "" = unnamed statement
  std::string_view rest;
  int16_t param_count = 0;
};
Result<BindMessage> parse_bind(std::string_view body);

// Describe 'D' / Close 'C': kind 'S' (statement) or 'P' (portal) and the name.
struct TargetMessage {
  char kind = 0;
  std::string_view name;
};
Result<TargetMessage> parse_describe(std::string_view body);
Result<TargetMessage> parse_close(std::string_view body);

struct ExecuteMessage {
  std::string_view portal;
  int32_t max_rows = 0;  // 0 = no limit
};
Result<ExecuteMessage> parse_execute(std::string_view body);

// PasswordMessage 'p' as a cleartext or md5 password response: the C string.
Result<std::string_view> parse_password_message(std::string_view body);

// SASLInitialResponse 'p': mechanism, then int32 length (-1 = no data) and the data.
struct SaslInitialResponse {
  std::string_view mechanism;
  std::string_view data;
  bool has_data = false;  // false when the length was -1
};
Result<SaslInitialResponse> parse_sasl_initial_response(std::string_view body);
// SASLResponse 'p' is the raw mechanism data: the whole body, nothing to parse.

}  // namespace helios::pg
