// Syntax shared by the SCRAM server and client: a message is comma-separated attributes
// "<letter>=<value>" (RFC 5802 section 7). Values never contain ','.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace helios::pg {

struct ScramAttribute {
  char name = 0;
  std::string_view value;
};

// Splits `msg` into attributes; an empty message, an empty part or a part not of the form
// "<letter>=..." is an error (EPROTO) mentioning `what` (e.g. "client-final-message").
Result<std::vector<ScramAttribute>> split_scram_attributes(std::string_view msg,
                                                           std::string_view what);

// RFC 5802 nonce: printable ASCII except ',', at least one character.
bool is_valid_scram_nonce(std::string_view nonce);

// saslname escaping for the "n=" attribute: '=' -> "=3D", ',' -> "=2C".
std::string escape_scram_username(std::string_view user);

Error scram_malformed(std::string_view what, std::string_view why);

}  // namespace helios::pg
