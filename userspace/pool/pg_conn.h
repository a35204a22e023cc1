// A small blocking PostgreSQL client for control-plane work off the data path: logging a new
// backend in (the connector threads), running auth_query, sending CancelRequests. Every wait
// is bounded by a deadline.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "io/tls.h"
#include "pg/scram_crypto.h"
#include "pg/scram_secret.h"

namespace helios::pool {

// Where PostgreSQL listens. A host starting with '/' is a unix socket directory.
struct ServerAddress {
  std::string host = "localhost";
  uint16_t port = 5432;
  bool operator==(const ServerAddress&) const = default;
};

// What the proxy knows that lets it log in as a user, best first.
struct LoginSecret {
  std::optional<std::string> password;          // plaintext (auth file, [backend] password)
  std::optional<pg::ScramKey> client_key;       // recovered from a client's SCRAM login
  std::optional<pg::ScramSecret> scram_secret;  // stored secret: verifies the server's signature
  std::optional<std::string> md5_hash;          // "md5..." as stored by PostgreSQL
};

using ParamList = std::vector<std::pair<std::string, std::string>>;

// How to secure a connection to PostgreSQL: PostgreSQL's sslmode semantics.
struct ServerTls {
  enum class Mode : uint8_t { kDisable, kPrefer, kRequire, kVerifyFull };
  Mode mode = Mode::kDisable;
  std::shared_ptr<io::TlsContext> ctx;  // client context (verification per mode)
};

struct SslDeleter {
  void operator()(SSL* s) const { SSL_free(s); }
};

struct ServerSession {
  UniqueFd fd;
  std::unique_ptr<SSL, SslDeleter> ssl;  // set when the session runs over TLS
  std::shared_ptr<io::TlsContext> tls_ctx;
  int32_t process_id = 0;
  int32_t secret_key = 0;
  ParamList params;  // ParameterStatus values reported at login
};

// Connects, logs in (trust, cleartext, md5 or SCRAM-SHA-256) and reads until ReadyForQuery.
// Errors from the server keep their SQLSTATE in Error::message as "SQLSTATE: message".
Result<ServerSession> pg_login(const ServerAddress& addr, const std::string& user,
                               const std::string& database, const ParamList& extra_params,
                               const LoginSecret& secret, Nanos deadline,
                               const ServerTls& tls = {});

using Row = std::vector<std::optional<std::string>>;

struct QueryResult {
  std::vector<std::string> columns;  // names from RowDescription (empty for no result set)
  std::vector<Row> rows;
};

// Runs one statement with text parameters over the extended protocol (no SQL quoting needed)
// and returns its column names and rows. The session stays usable afterwards unless an I/O
// error occurred.
Result<QueryResult> pg_query(ServerSession& s, const std::string& sql,
                             const std::vector<std::string>& params, Nanos deadline);

// Sends a CancelRequest for (process_id, secret_key) on a new connection.
Status pg_cancel(const ServerAddress& addr, int32_t process_id, int32_t secret_key, Nanos deadline);

// Opens a non-blocking-capable TCP or unix stream to the server (blocking connect with deadline).
Result<UniqueFd> connect_server(const ServerAddress& addr, Nanos deadline);

}  // namespace helios::pool
