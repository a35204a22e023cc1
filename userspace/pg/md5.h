// PostgreSQL's MD5 password scheme.
//   stored form:        "md5" + hex(md5(password + user))             (pg_authid.rolpassword)
//   PasswordMessage:    "md5" + hex(md5(hex_part_of_stored + salt4))   (answer to AuthMD5Password)
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace helios::pg {

using Md5Salt = std::array<uint8_t, 4>;
constexpr size_t kMd5PasswordLen = 35;  // "md5" + 32 hex digits

// "md5" followed by exactly 32 lowercase hex digits (PostgreSQL's test, see get_password_type()).
bool is_md5_hash(std::string_view text);

std::string md5_password_hash(std::string_view password, std::string_view user);

// The PasswordMessage content for an AuthenticationMD5Password with `salt`, from the stored hash.
// Error (EINVAL) if `stored_md5_hash` is not an md5 hash.
Result<std::string> md5_salted(std::string_view stored_md5_hash, Md5Salt salt);

// Checks a client's PasswordMessage against the stored hash, in constant time for equal lengths.
bool verify_md5_response(std::string_view stored_md5_hash, Md5Salt salt, std::string_view response);

// A fresh random salt for AuthenticationMD5Password (error only if OpenSSL's RNG fails).
Result<Md5Salt> random_md5_salt();

}  // namespace helios::pg
