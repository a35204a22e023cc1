// Every message body parser of pg/reader on arbitrary bytes: errors are values, never crashes
// or reads outside the body.
#include <cstdint>
#include <string>
#include <string_view>

#include "pg/reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string copy(reinterpret_cast<const char*>(data) + 1, size - 1);  // exact-size body
  std::string_view body(copy);
  namespace pg = helios::pg;
  switch (data[0] % 20) {
    case 0:
      (void)pg::parse_error_response(body);
      break;
    case 1:
      (void)pg::parse_parameter_status(body);
      break;
    case 2:
      (void)pg::parse_backend_key_data(body);
      break;
    case 3:
      (void)pg::parse_authentication(body);
      break;
    case 4:
      (void)pg::parse_sasl_mechanisms(body);
      break;
    case 5:
      (void)pg::parse_ready_for_query(body);
      break;
    case 6:
      (void)pg::parse_command_complete(body);
      break;
    case 7:
      (void)pg::parse_negotiate_protocol_version(body);
      break;
    case 8:
      (void)pg::parse_row_description(body);
      break;
    case 9:
      (void)pg::parse_data_row(body);
      break;
    case 10:
      (void)pg::parse_query(body);
      break;
    case 11:
      (void)pg::parse_parse(body);
      break;
    case 12:
      (void)pg::parse_bind(body);
      break;
    case 13:
      (void)pg::parse_describe(body);
      break;
    case 14:
      (void)pg::parse_close(body);
      break;
    case 15:
      (void)pg::parse_execute(body);
      break;
    case 16:
      (void)pg::parse_password_message(body);
      break;
    default:
      (void)pg::parse_sasl_initial_response(body);
      break;
  }
  return 0;
}
