// Where the proxy finds what it needs to check a client's login: the auth file when one is
// configured; the configured [backend] password for the pool's own user; otherwise PostgreSQL
// itself through auth_query (run as the auth user on a connector thread). Each auth_query login
// reads the catalog afresh, so a changed password, NOLOGIN or VALID UNTIL counts at once, as in
// PostgreSQL. Lookups of one user that wait together share one query, and after a failed login
// that user's record is reused for a second (kFailureHoldoff): a stranger guessing passwords
// makes at most about one query per user per second. With [auth] auth_cache_ttl > 0, a record
// that recent is reused instead (fewer queries per login, but a catalog change can take that
// long); a failed login with a record older than kFailureHoldoff makes the next one refetch.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/clock.h"
#include "common/result.h"
#include "config/config.h"
#include "pg/credential.h"
#include "pg/role_record.h"
#include "pool/connector.h"
#include "pool/pg_conn.h"

namespace helios::proxy {

class AuthService {
 public:
  using Done = std::function<void(Result<pg::RoleRecord>, pool::Messenger&)>;
  // How long a failed login makes lookups of its user reuse the last record fetched.
  static constexpr Nanos kFailureHoldoff = kNanosPerSec;
  explicit AuthService(pool::Connector& connector) : connector_(connector) {}
  Status configure(const config::Config& cfg);

  // The record, if it is known without asking PostgreSQL: the auth file, the pool's own user
  // (its configured password), or a user whose login failed less than kFailureHoldoff ago.
  // ENOENT: no such user.
  std::optional<Result<pg::RoleRecord>> lookup_now(const std::string& user);
  // Asks PostgreSQL (auth_query) on a connector thread; `done` runs there.
  void lookup(const std::string& user, Done done);
  // A login of `user` failed (wrong password): start its holdoff.
  void login_failed(const std::string& user);

 private:
  Result<pg::RoleRecord> query(const std::string& user, Nanos asked);

  pool::Connector& connector_;
  mutable std::mutex mu_;
  bool have_file_ = false;
  std::unordered_map<std::string, pg::Credential> file_;
  std::string pool_user_;                      // [backend] user
  std::optional<pg::Credential> pool_secret_;  // its configured password
  std::string auth_user_, auth_password_, auth_database_, auth_query_;
  std::vector<pool::ServerAddress> addresses_;  // [backend] hosts, in order
  pool::ServerTls tls_;
  Nanos connect_timeout_ = 5 * kNanosPerSec;
  struct Cached {
    Result<pg::RoleRecord> record = Error{ENOENT, "no such user"};
    Nanos sent = 0;       // when the query that fetched it was sent
    Nanos failed_at = 0;  // last failed login with it (0 = none)
  };
  std::unordered_map<std::string, Cached> cache_;
  Nanos cache_ttl_ = 0;  // [auth] auth_cache_ttl
  static constexpr size_t kCacheSweepAt = 4096;
  static constexpr size_t kCacheCap = 65536;
  Nanos last_sweep_ = 0;
  std::mutex conn_mu_;  // one auth_query at a time over the shared session
  std::optional<pool::ServerSession> session_;
};

}  // namespace helios::proxy
