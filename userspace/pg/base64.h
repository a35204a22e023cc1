// Standard base64 (RFC 4648, with padding, no line breaks) as used by SCRAM and PostgreSQL's
// secrets; a thin strict wrapper over OpenSSL's EVP_EncodeBlock / EVP_DecodeBlock.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace helios::pg {

std::string base64_encode(std::string_view bytes);
std::string base64_encode(std::span<const uint8_t> bytes);

// Strict: length a multiple of 4, only the base64 alphabet, at most two '=' and only at the end,
// no whitespace. Returns std::nullopt for anything else.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace helios::pg
