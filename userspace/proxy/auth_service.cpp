#include "proxy/auth_service.h"

#include "common/log.h"
#include "pg/auth_file.h"
#include "proxy/server_tls.h"

namespace helios::proxy {

Status AuthService::configure(const config::Config& cfg) {
  std::unordered_map<std::string, pg::Credential> file;
  bool have_file = !cfg.auth.auth_file.empty();
  if (have_file) {
    auto af = pg::load_auth_file(cfg.auth.auth_file);
    if (!af) return af.error();
    for (const auto& [user, cred] : af->users()) file.emplace(user, cred);
  }
  std::lock_guard lock(mu_);
  have_file_ = have_file;
  file_ = std::move(file);
  auth_user_ = cfg.auth.auth_user;
  auth_password_ = cfg.auth.auth_password;
  auth_database_ = cfg.auth.auth_database;
  auth_query_ = cfg.auth.auth_query;
  address_ = pool::ServerAddress{cfg.backend.host, cfg.backend.port};
  if (auto t = server_tls_from(cfg)) tls_ = std::move(*t);
  connect_timeout_ = cfg.backend.connection_timeout;
  cache_.clear();
  {
    std::lock_guard conn(conn_mu_);
    session_.reset();  // reconnect with the new settings
  }
  return {};
}

bool AuthService::uses_auth_query() const {
  std::lock_guard lock(mu_);
  return !have_file_;
}

std::optional<Result<pg::Credential>> AuthService::lookup_now(const std::string& user) {
  std::lock_guard lock(mu_);
  if (have_file_) {
    auto it = file_.find(user);
    if (it == file_.end()) return Result<pg::Credential>(Error{ENOENT, "no such user"});
    return Result<pg::Credential>(it->second);
  }
  auto it = cache_.find(user);
  if (it != cache_.end() && monotonic_now() - it->second.fetched < cache_ttl_)
    return Result<pg::Credential>(it->second.secret);
  return std::nullopt;
}

void AuthService::invalidate(const std::string& user) {
  std::lock_guard lock(mu_);
  cache_.erase(user);
}

void AuthService::lookup(const std::string& user, Done done) {
  connector_.run(
      [this, user, done = std::move(done)](pool::Messenger& m) { done(query(user), m); });
}

Result<pg::Credential> AuthService::query(const std::string& user) {
  std::string auth_user, auth_password, auth_database, sql;
  pool::ServerAddress address;
  pool::ServerTls tls;
  Nanos timeout;
  {
    std::lock_guard lock(mu_);
    // Another lookup may have filled the cache while this one waited for a thread.
    auto it = cache_.find(user);
    if (it != cache_.end() && monotonic_now() - it->second.fetched < cache_ttl_)
      return it->second.secret;
    auth_user = auth_user_;
    auth_password = auth_password_;
    auth_database = auth_database_;
    sql = auth_query_;
    address = address_;
    tls = tls_;
    timeout = connect_timeout_;
  }
  if (auth_user.empty())
    return Error{EINVAL,
                 "no auth_user configured for auth_query (set [auth] auth_user or "
                 "[backend] user, or use an auth_file)"};
  std::lock_guard conn(conn_mu_);
  Result<std::vector<pool::Row>> rows = Error{0, ""};
  for (int attempt = 0; attempt < 2; ++attempt) {
    Nanos deadline = monotonic_now() + timeout;
    if (!session_) {
      pool::LoginSecret secret;
      if (!auth_password.empty()) secret.password = auth_password;
      auto s =
          pool::pg_login(address, auth_user, auth_database,
                         {{"application_name", "heliosproxy auth_query"}}, secret, deadline, tls);
      if (!s)
        return Error{s.error().code,
                     "auth_query login as \"" + auth_user + "\": " + s.error().message};
      session_ = std::move(*s);
    }
    rows = pool::pg_query(*session_, sql, {user}, deadline);
    if (rows) break;
    // The session may have died (server restart, idle timeout): retry once on a fresh one.
    session_.reset();
  }
  if (!rows) return Error{rows.error().code, "auth_query: " + rows.error().message};
  if (rows->empty() || rows->front().size() < 2 || !rows->front()[1])
    return Error{ENOENT, "no such user"};
  auto cred = pg::credential_from_stored(*rows->front()[1]);
  if (!cred) return cred.error();
  std::lock_guard lock(mu_);
  cache_[user] = Cached{*cred, monotonic_now()};
  return *cred;
}

}  // namespace helios::proxy
