// Where the proxy finds a user's secret to check a client's login: the auth file when one is
// configured, otherwise PostgreSQL itself through auth_query (run as the auth user on a
// connector thread, answers cached briefly). A cached secret that fails a login is refetched
// once, so a changed password takes effect at the next attempt.
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
#include "pool/connector.h"
#include "pool/pg_conn.h"

namespace helios::proxy {

class AuthService {
 public:
  using Done = std::function<void(Result<pg::Credential>, pool::Messenger&)>;

  explicit AuthService(pool::Connector& connector) : connector_(connector) {}
  Status configure(const config::Config& cfg);

  // The secret, if it is known without asking PostgreSQL (auth file, or a fresh cache entry).
  std::optional<Result<pg::Credential>> lookup_now(const std::string& user);
  // Asks PostgreSQL (auth_query) on a connector thread; `done` runs there.
  void lookup(const std::string& user, Done done);
  // A login with the cached secret failed: drop it so the next attempt refetches.
  void invalidate(const std::string& user);
  bool uses_auth_query() const;

 private:
  Result<pg::Credential> query(const std::string& user);

  pool::Connector& connector_;
  mutable std::mutex mu_;
  bool have_file_ = false;
  std::unordered_map<std::string, pg::Credential> file_;
  std::string auth_user_, auth_password_, auth_database_, auth_query_;
  pool::ServerAddress address_;
  pool::ServerTls tls_;
  Nanos connect_timeout_ = 5 * kNanosPerSec;
  struct Cached {
    pg::Credential secret;
    Nanos fetched = 0;
  };
  std::unordered_map<std::string, Cached> cache_;
  Nanos cache_ttl_ = 30 * kNanosPerSec;
  std::mutex conn_mu_;  // one auth_query at a time over the shared session
  std::optional<pool::ServerSession> session_;
};

}  // namespace helios::proxy
