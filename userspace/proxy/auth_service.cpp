#include "proxy/auth_service.h"

#include <algorithm>
#include <chrono>

#include "common/log.h"
#include "pg/auth_file.h"
#include "proxy/server_tls.h"

namespace helios::proxy {
namespace {

// What to do when the auth user may not read the catalog (SQLSTATE 42501).
std::string setup_advice(const std::string& auth_user, const std::string& database) {
  return "the auth user \"" + auth_user +
         "\" may not read passwords: install the lookup function with `heliosctl auth-setup "
         "--auth-user " +
         auth_user + " -d " + database + " | psql -U postgres -d " + database +
         "` (or with --install) and set [auth] auth_query = \"SELECT * FROM "
         "helios.user_lookup($1)\" (or make "
         "[auth] auth_user a superuser, or use [auth] auth_file)";
}

}  // namespace

Status AuthService::configure(const config::Config& cfg) {
  std::unordered_map<std::string, pg::Credential> file;
  bool have_file = !cfg.auth.auth_file.empty();
  if (have_file) {
    auto af = pg::load_auth_file(cfg.auth.auth_file);
    if (!af) return af.error();
    for (const auto& [user, cred] : af->users()) file.emplace(user, cred);
  }
  std::optional<pg::Credential> pool_secret;
  if (!cfg.backend.password.empty()) {
    if (auto c = pg::credential_from_stored(cfg.backend.password)) pool_secret = std::move(*c);
  }
  std::lock_guard lock(mu_);
  have_file_ = have_file;
  file_ = std::move(file);
  pool_user_ = cfg.backend.user;
  pool_secret_ = std::move(pool_secret);
  auth_user_ = cfg.auth.auth_user;
  auth_password_ = cfg.auth.auth_password;
  auth_database_ = cfg.auth.auth_database;
  auth_query_ = cfg.auth.auth_query;
  // Every [backend] host can answer a lookup (roles replicate): the first that accepts a login.
  addresses_.clear();
  for (const auto& h : cfg.backend.host_list()) addresses_.push_back({h.host, h.port});
  if (auto t = server_tls_from(cfg)) tls_ = std::move(*t);
  connect_timeout_ = cfg.backend.connection_timeout;
  cache_ttl_ = cfg.auth.auth_cache_ttl;
  cache_.clear();
  {
    std::lock_guard conn(conn_mu_);
    session_.reset();  // reconnect with the new settings
  }
  return {};
}

std::optional<Result<pg::RoleRecord>> AuthService::lookup_now(const std::string& user) {
  std::lock_guard lock(mu_);
  if (have_file_) {
    auto it = file_.find(user);
    if (it == file_.end()) return Result<pg::RoleRecord>(Error{ENOENT, "no such user"});
    return Result<pg::RoleRecord>(pg::RoleRecord{it->second});
  }
  // The pool's own user: the proxy holds its password already (PostgreSQL checks LOGIN and
  // VALID UNTIL again when the pool logs in as it).
  if (pool_secret_ && user == pool_user_)
    return Result<pg::RoleRecord>(pg::RoleRecord{*pool_secret_});
  auto it = cache_.find(user);
  Nanos now = monotonic_now();
  if (it == cache_.end()) return std::nullopt;
  const Cached& c = it->second;
  if (c.failed_at != 0 && now - c.failed_at < kFailureHoldoff && now - c.sent < kFailureHoldoff)
    return c.record;
  if (cache_ttl_ > 0 && c.sent != 0 && now - c.sent < cache_ttl_) return c.record;
  return std::nullopt;
}

void AuthService::login_failed(const std::string& user) {
  std::lock_guard lock(mu_);
  if (have_file_) return;
  auto it = cache_.find(user);
  if (it == cache_.end()) return;
  Nanos now = monotonic_now();
  // A record older than the holdoff may be stale (a changed password): the next login refetches
  // it (so at most one refetch per user per second); a fresher one is reused for the holdoff.
  if (now - it->second.sent >= kFailureHoldoff)
    it->second.sent = 0;
  else
    it->second.failed_at = now;
}

void AuthService::lookup(const std::string& user, Done done) {
  Nanos asked = monotonic_now();
  connector_.run([this, user, asked, done = std::move(done)](pool::Messenger& m) {
    done(query(user, asked), m);
  });
}

Result<pg::RoleRecord> AuthService::query(const std::string& user, Nanos asked) {
  std::string auth_user, auth_password, auth_database, sql;
  std::vector<pool::ServerAddress> addresses;
  pool::ServerTls tls;
  Nanos timeout;
  auto fresh_enough = [&]() -> std::optional<Result<pg::RoleRecord>> {
    // A query sent after this lookup was asked for answers it too (lookups that waited
    // together share one query).
    auto it = cache_.find(user);
    if (it != cache_.end() && it->second.sent >= asked) return it->second.record;
    return std::nullopt;
  };
  {
    std::lock_guard lock(mu_);
    if (auto r = fresh_enough()) return *r;
    auth_user = auth_user_;
    auth_password = auth_password_;
    auth_database = auth_database_;
    sql = auth_query_;
    addresses = addresses_;
    tls = tls_;
    timeout = connect_timeout_;
  }
  if (auth_user.empty())
    return Error{EINVAL,
                 "no auth_user configured for auth_query (set [auth] auth_user or "
                 "[backend] user, or use an auth_file)"};
  std::lock_guard conn(conn_mu_);
  {
    std::lock_guard lock(mu_);
    if (auto r = fresh_enough()) return *r;
  }
  Nanos sent = monotonic_now();
  Result<pool::QueryResult> rows = Error{0, ""};
  for (int attempt = 0; attempt < 2; ++attempt) {
    Nanos deadline = monotonic_now() + timeout;
    if (!session_) {
      pool::LoginSecret secret;
      if (!auth_password.empty()) secret.password = auth_password;
      // ISO dates in UTC: how VALID UNTIL is read (pg/role_record.h).
      Result<pool::ServerSession> s = Error{ENOENT, "no [backend] host"};
      for (const auto& address : addresses) {
        s = pool::pg_login(address, auth_user, auth_database,
                           {{"application_name", "heliosproxy auth_query"},
                            {"DateStyle", "ISO"},
                            {"TimeZone", "UTC"}},
                           secret, deadline, tls);
        // A server that answered (wrong password, no such database) is not passed over.
        if (s || (s.error().message.size() > 6 && s.error().message[5] == ':')) break;
      }
      if (!s)
        return Error{s.error().code,
                     "auth_query login as \"" + auth_user + "\": " + s.error().message};
      session_ = std::move(*s);
    }
    sent = monotonic_now();
    rows = pool::pg_query(*session_, sql, {user}, deadline);
    // A server error (EACCES, "SQLSTATE: message") leaves the session usable.
    if (rows || rows.error().code == EACCES) break;
    // An I/O error: the session died (server restart, idle timeout); retry once on a new one.
    session_.reset();
  }
  if (!rows) {
    std::string msg = "auth_query: " + rows.error().message;
    if (rows.error().message.starts_with("42501")) {
      msg += "; " + setup_advice(auth_user, auth_database);
      return Error{EACCES, msg};
    }
    return Error{rows.error().code, msg};
  }
  Result<pg::RoleRecord> record = Error{ENOENT, "no such user"};
  if (!rows->rows.empty()) record = pg::role_from_row(rows->columns, rows->rows.front());
  if (!record && record.error().code != ENOENT)
    record = Error{record.error().code, "auth_query: " + record.error().message};
  std::lock_guard lock(mu_);
  // Records matter for the holdoff and auth_cache_ttl only: many distinct names (a stranger's) are
  // swept, at most once a second, and past a hard cap dropped altogether (costing only extra
  // queries).
  if (cache_.size() > kCacheSweepAt && sent - last_sweep_ >= kNanosPerSec) {
    last_sweep_ = sent;
    Nanos keep = std::max(kFailureHoldoff, cache_ttl_);
    std::erase_if(cache_, [&](const auto& kv) { return sent - kv.second.sent >= keep; });
    if (cache_.size() > kCacheCap) cache_.clear();
  }
  Cached& c = cache_[user];
  c.record = record;
  c.sent = sent;
  return record;
}

}  // namespace helios::proxy
