// [auth] type = "trust": the client gives no password, but the proxy still asks what PostgreSQL
// asks at a trust login (InitializeSessionUserId): does the role exist, and may it log in? The
// answers are PostgreSQL's, at login time: FATAL 28000 `role "x" does not exist`, FATAL 28000
// `role "x" is not permitted to log in`. VALID UNTIL limits a password, so a trust login ignores
// it, as PostgreSQL's trust method does. The record comes from the same place as for a password
// login (auth file, the pool's own user, or auth_query: AuthService), so a NOLOGIN counts at the
// next login. An unknown role starts the lookup holdoff: a stranger trying names makes at most
// about one auth_query per name per second.
#include <type_traits>
#include <variant>

#include "pg/sqlstate.h"
#include "proxy/startup_state.h"
#include "proxy/worker.h"

namespace helios::proxy {

namespace {

// What the backend login of a trusted client can use: a plaintext password or an md5 hash (a
// SCRAM secret alone cannot log in as the client; then PostgreSQL must trust the proxy too).
pool::LoginSecret login_secret_of(const pg::RoleRecord& record) {
  pool::LoginSecret login;
  if (!record.secret) return login;
  std::visit(
      [&](const auto& cred) {
        using T = std::decay_t<decltype(cred)>;
        if constexpr (std::is_same_v<T, pg::PlainCredential>)
          login.password = cred.password;
        else if constexpr (std::is_same_v<T, pg::Md5Credential>)
          login.md5_hash = cred.hash;
      },
      *record.secret);
  return login;
}

}  // namespace

void Worker::on_trusted(Client* c, Result<pg::RoleRecord> record) {
  StartupState& st = *c->startup;
  if (!record && record.error().code != ENOENT) {
    refuse_login(c, LoginFailure::kLookup, pg::sqlstate::kConnectionFailure,
                 "the proxy could not look up user \"" + st.user + "\": " + record.error().message);
    return;
  }
  if (!record) {
    ctx_.auth->login_failed(st.user);
    refuse_login(c, LoginFailure::kUnknownRole, pg::sqlstate::kInvalidAuthorizationSpecification,
                 "role \"" + st.user + "\" does not exist");
    return;
  }
  if (!record->can_login) {
    refuse_login(c, LoginFailure::kNoLogin, pg::sqlstate::kInvalidAuthorizationSpecification,
                 "role \"" + st.user + "\" is not permitted to log in");
    return;
  }
  on_authenticated(c, login_secret_of(*record));
}

}  // namespace helios::proxy
