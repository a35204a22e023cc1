// The admin API's generated token. The mutating endpoints (reload, drain) always need a bearer
// token; when the config sets none ([admin] token / token_file), the proxy uses the token in
// generated_token_path(): read if the file exists, else created there at start (32 random bytes,
// hex, mode 0600). heliosctl finds the same file (--token-file, HELIOS_ADMIN_TOKEN_FILE,
// --config / HELIOS_PROXY_CONFIG).
//
// The path: $HELIOS_ADMIN_TOKEN_FILE if set, else "admin_token" in the config file's directory.
#pragma once

#include <string>

#include "common/result.h"
#include "config/config.h"

namespace helios::ops {

inline constexpr const char* kAdminTokenFileEnv = "HELIOS_ADMIN_TOKEN_FILE";
inline constexpr const char* kAdminTokenFileName = "admin_token";

std::string generated_token_path(const std::string& config_path, const config::GetEnv& getenv);

// The token in `path` (its first line); ENOENT if there is no such file.
Result<std::string> read_token_file(const std::string& path);

// read_token_file(path), or a new token written to `path` (mode 0600) if it does not exist.
// A file others may read is narrowed to 0600 (warned).
Result<std::string> ensure_token_file(const std::string& path);
// The same; `retry`: when another process (the other instance of an online restart) creates
// the file between our open and our create, read theirs once.
Result<std::string> ensure_token_file(const std::string& path, bool retry);

}  // namespace helios::ops
