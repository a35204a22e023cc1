// Scratch a client needs only until it is authenticated: the startup packet being read, the
// parsed startup, and the authentication exchange. Freed at the welcome, so an idle
// authenticated client carries none of it.
#pragma once

#include <sys/socket.h>

#include <optional>
#include <string>

#include "pg/credential.h"
#include "pg/md5.h"
#include "pg/scram_server.h"
#include "pg/startup.h"
#include "pool/pg_conn.h"
#include "proxy/preauth_sources.h"
#include "session/params.h"

namespace helios::proxy {

struct StartupState {
  sockaddr_storage peer{};          // the client's address (for log lines)
  std::optional<SourceKey> source;  // its source for max_unauthenticated_per_source
  bool source_counted = false;      // counted in SharedContext::preauth
  std::string packet;               // bytes of the (untyped) startup packet gathered so far
  std::string user;
  std::string database;
  session::ParamPairs params;  // session parameters asked for at startup (lower-case names)
  std::string tenant;          // tenant id derived from the startup parameters
  std::optional<pg::Credential> credential;
  std::string doomed;     // why this login cannot succeed (no such role, expired...): logged
  bool can_login = true;  // rolcanlogin: checked after the password, as PostgreSQL does
  std::optional<pg::ScramServer> scram;
  bool sasl_started = false;
  pg::Md5Salt md5_salt{};
  std::string md5_hash;
  // Authenticated, waiting for a fleet share of its tenant's max_connections (worker_fleet.cpp).
  std::optional<pool::LoginSecret> fleet_login;
};

}  // namespace helios::proxy
