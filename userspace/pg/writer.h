// Message construction (no I/O): every function appends one complete protocol message to a
// std::string used as a growable byte buffer. Integers are written in network byte order.
//
// Strings passed as C strings (put_cstring and every name/value/message argument below) must not
// contain NUL bytes: the protocol has no way to carry them. Such a string is cut at its first NUL
// so the framing of the output always stays valid.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pg/error_fields.h"
#include "pg/protocol.h"

namespace helios::pg {

// Builds one message: begin(type) ... put_*() ... end(). end() patches the int32 length.
// begin_untyped() starts a message without a type byte (StartupMessage, SSLRequest,
// CancelRequest). A writer builds one message at a time; it may be reused after end().
class MessageWriter {
 public:
  explicit MessageWriter(std::string& out) : out_(out) {}
  MessageWriter(const MessageWriter&) = delete;
  MessageWriter& operator=(const MessageWriter&) = delete;

  MessageWriter& begin(char type);
  MessageWriter& begin_untyped();
  MessageWriter& put_u8(uint8_t v);
  MessageWriter& put_i16(int16_t v);
  MessageWriter& put_i32(int32_t v);
  MessageWriter& put_cstring(std::string_view s);  // bytes up to the first NUL, then NUL
  MessageWriter& put_bytes(std::string_view bytes);
  MessageWriter& put_bytes(std::span<const uint8_t> bytes);
  // Patches the length. `streamed`: body bytes that follow outside `out` (the rest of a long
  // message the relay forwards as it arrives, behind this rewritten prefix).
  void end(size_t streamed = 0);

  bool in_message() const { return start_ != kNone; }

 private:
  static constexpr size_t kNone = static_cast<size_t>(-1);
  std::string& out_;
  size_t start_ = kNone;  // offset of the length field of the open message
};

// ---- Backend messages (the proxy acting as a server towards clients) ----

// ErrorResponse 'E' with S and V = severity, C, M, and D/H when non-empty.
void write_error_response(std::string& out, std::string_view severity, std::string_view sqlstate,
                          std::string_view message, std::string_view detail = {},
                          std::string_view hint = {});
// NoticeResponse 'N', same fields.
void write_notice_response(std::string& out, std::string_view severity, std::string_view sqlstate,
                           std::string_view message, std::string_view detail = {},
                           std::string_view hint = {});
// ErrorResponse/NoticeResponse carrying every field of `f` (empty fields are left out; V is
// written as f.severity_nonlocalized, or f.severity if that is empty).
void write_error_response(std::string& out, const ErrorFields& f);
void write_notice_response(std::string& out, const ErrorFields& f);

void write_parameter_status(std::string& out, std::string_view name, std::string_view value);
void write_backend_key_data(std::string& out, int32_t process_id, int32_t secret_key);
void write_ready_for_query(std::string& out, char tx_status);

void write_auth_ok(std::string& out);
void write_auth_cleartext_password(std::string& out);
void write_auth_md5_password(std::string& out, std::array<uint8_t, 4> salt);
// AuthenticationSASL listing the mechanisms the server offers.
void write_auth_sasl(std::string& out, std::span<const std::string_view> mechanisms);
void write_auth_sasl_continue(std::string& out, std::string_view data);
void write_auth_sasl_final(std::string& out, std::string_view data);

// NegotiateProtocolVersion 'v': the newest protocol version supported, as a full version code
// (kNewestProtocol, as PostgreSQL sends it; a bare minor number 0 would read as "2.0 or older"
// to libpq 17+), and the unrecognized "_pq_." options.
void write_negotiate_protocol_version(std::string& out, int32_t newest_version,
                                      std::span<const std::string> unsupported_options);

void write_command_complete(std::string& out, std::string_view tag);
void write_empty_query_response(std::string& out);
void write_parse_complete(std::string& out);
void write_bind_complete(std::string& out);
void write_close_complete(std::string& out);
void write_no_data(std::string& out);

// RowDescription for a result whose columns are all `text` in text format.
void write_row_description(std::string& out, std::span<const std::string_view> column_names);
// DataRow; std::nullopt is SQL NULL.
void write_data_row(std::string& out, std::span<const std::optional<std::string_view>> values);

// ---- Frontend messages (the proxy acting as a client of PostgreSQL) ----

using StartupParams = std::vector<std::pair<std::string, std::string>>;

// StartupMessage: protocol version, then name/value pairs, then the terminating NUL.
void write_startup_message(std::string& out,
                           std::span<const std::pair<std::string, std::string>> params,
                           int32_t protocol = kProtocolV3);
void write_ssl_request(std::string& out);
void write_gss_enc_request(std::string& out);
void write_cancel_request(std::string& out, int32_t process_id, int32_t secret_key);

void write_password_message(std::string& out, std::string_view password);
void write_sasl_initial_response(std::string& out, std::string_view mechanism,
                                 std::string_view data);
void write_sasl_response(std::string& out, std::string_view data);

void write_query(std::string& out, std::string_view sql);
void write_terminate(std::string& out);

void write_parse(std::string& out, std::string_view statement, std::string_view query,
                 std::span<const int32_t> param_type_oids = {});
// Bind with all parameters in text format (nullopt = NULL) and all results in text format.
void write_bind(std::string& out, std::string_view portal, std::string_view statement,
                std::span<const std::optional<std::string_view>> text_params = {});
// Parse whose query text and parameter types are already encoded ("query\0" int16 n, n x int32).
void write_parse_raw(std::string& out, std::string_view statement, std::string_view rest);
// Bind from the raw tail of another Bind (see BindMessage::rest in reader.h): used to re-address
// a client's Bind to a differently named statement without re-encoding its parameters.
void write_bind_raw(std::string& out, std::string_view portal, std::string_view statement,
                    std::string_view rest);
void write_describe(std::string& out, char kind, std::string_view name);  // kind 'S' or 'P'
void write_execute(std::string& out, std::string_view portal, int32_t max_rows = 0);
void write_close(std::string& out, char kind, std::string_view name);  // kind 'S' or 'P'
void write_sync(std::string& out);
void write_flush(std::string& out);

}  // namespace helios::pg
