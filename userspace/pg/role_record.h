// What an auth_query lookup says about a role: its stored password and the two other things
// PostgreSQL checks at login, VALID UNTIL (rolvaliduntil) and LOGIN (rolcanlogin).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "pg/credential.h"

namespace helios::pg {

struct RoleRecord {
  std::optional<Credential> secret;    // none: the role has no password (every login fails)
  std::optional<int64_t> valid_until;  // unix microseconds; none = no limit (NULL, 'infinity')
  bool can_login = true;

  // PostgreSQL refuses a password login once rolvaliduntil has passed (CheckPasswordAuth).
  bool expired(int64_t now_unix_us) const { return valid_until && *valid_until < now_unix_us; }
};

// Reads one auth_query result row. Columns are read by name when the result has a password
// column named passwd, rolpassword or password: then valuntil / rolvaliduntil / valid_until and
// canlogin / rolcanlogin / usecanlogin are read when present. Otherwise by position: the 2nd
// column is the password, an optional 3rd the valid-until time, an optional 4th can-login.
// Missing columns mean "no limit" and "may log in"; NULLs likewise, except a NULL password.
Result<RoleRecord> role_from_row(const std::vector<std::string>& columns,
                                 const std::vector<std::optional<std::string>>& row);

// A timestamptz as PostgreSQL prints it with DateStyle ISO ("2030-01-02 03:04:05.678+00",
// any UTC offset, optional " BC"), 'infinity', '-infinity', or a number of seconds since the
// epoch. Returns unix microseconds; nullopt for 'infinity'.
Result<std::optional<int64_t>> parse_valid_until(std::string_view text);

}  // namespace helios::pg
