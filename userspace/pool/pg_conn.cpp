#include "pool/pg_conn.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <array>
#include <cstring>

#include "io/listener.h"
#include "pg/md5.h"
#include "pg/protocol.h"
#include "pg/reader.h"
#include "pg/scram_client.h"
#include "pg/writer.h"

namespace helios::pool {
namespace {

Status wait_fd(int fd, short events, Nanos deadline) {
  for (;;) {
    Nanos left = deadline - monotonic_now();
    if (left <= 0) return Error{ETIMEDOUT, "timed out talking to PostgreSQL"};
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, int((left + kNanosPerMilli - 1) / kNanosPerMilli));
    if (rc > 0) return {};
    if (rc < 0 && errno != EINTR) return Error::from_errno("poll");
  }
}

// A connection to PostgreSQL for blocking use: a socket, with TLS on top once negotiated.
struct Wire {
  int fd;
  SSL* ssl = nullptr;
};

// Waits as OpenSSL asks (it may need to read to write and the other way round).
Status wait_ssl(const Wire& w, int rc, Nanos deadline, const char* what) {
  int err = SSL_get_error(w.ssl, rc);
  if (err == SSL_ERROR_WANT_READ) return wait_fd(w.fd, POLLIN, deadline);
  if (err == SSL_ERROR_WANT_WRITE) return wait_fd(w.fd, POLLOUT, deadline);
  if (err == SSL_ERROR_ZERO_RETURN) return Error{ECONNRESET, "PostgreSQL closed the TLS session"};
  return Error{EPROTO, std::string(what) + ": " + io::tls_error_string()};
}

Status write_all(const Wire& w, std::string_view data, Nanos deadline) {
  while (!data.empty()) {
    if (w.ssl) {
      int n = SSL_write(w.ssl, data.data(), int(data.size()));
      if (n > 0) {
        data.remove_prefix(size_t(n));
      } else if (auto s = wait_ssl(w, n, deadline, "TLS write to PostgreSQL"); !s) {
        return s;
      }
      continue;
    }
    ssize_t n = ::send(w.fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(size_t(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (auto s = wait_fd(w.fd, POLLOUT, deadline); !s) return s;
      continue;
    }
    return Error::from_errno("send to PostgreSQL");
  }
  return {};
}

Status read_exact(const Wire& w, char* out, size_t len, Nanos deadline) {
  while (len > 0) {
    if (w.ssl) {
      int n = SSL_read(w.ssl, out, int(len));
      if (n > 0) {
        out += n;
        len -= size_t(n);
      } else if (auto s = wait_ssl(w, n, deadline, "TLS read from PostgreSQL"); !s) {
        return s;
      }
      continue;
    }
    ssize_t n = ::recv(w.fd, out, len, 0);
    if (n > 0) {
      out += n;
      len -= size_t(n);
      continue;
    }
    if (n == 0) return Error{ECONNRESET, "PostgreSQL closed the connection"};
    if (errno == EAGAIN || errno == EINTR) {
      if (auto s = wait_fd(w.fd, POLLIN, deadline); !s) return s;
      continue;
    }
    return Error::from_errno("recv from PostgreSQL");
  }
  return {};
}

struct Message {
  char type = 0;
  std::string body;
};

constexpr uint32_t kMaxControlMessage = 64 * 1024 * 1024;

Result<Message> read_message(const Wire& fd, Nanos deadline) {
  char hdr[5];
  if (auto s = read_exact(fd, hdr, 5, deadline); !s) return s.error();
  uint32_t len = (uint32_t(uint8_t(hdr[1])) << 24) | (uint32_t(uint8_t(hdr[2])) << 16) |
                 (uint32_t(uint8_t(hdr[3])) << 8) | uint8_t(hdr[4]);
  if (len < 4 || len > kMaxControlMessage)
    return Error{EPROTO, "invalid message length from PostgreSQL"};
  Message m;
  m.type = hdr[0];
  m.body.resize(len - 4);
  if (auto s = read_exact(fd, m.body.data(), m.body.size(), deadline); !s) return s.error();
  return m;
}

Error server_error(std::string_view body, const char* during) {
  auto f = pg::parse_error_response(body);
  if (!f) return Error{EPROTO, std::string("malformed ErrorResponse during ") + during};
  return Error{EACCES, f->sqlstate + ": " + f->message};
}

// Runs the authentication exchange after the StartupMessage was sent.
Status authenticate(const Wire& fd, const std::string& user, const LoginSecret& secret,
                    Nanos deadline) {
  std::optional<pg::ScramClient> scram;
  for (;;) {
    auto m = read_message(fd, deadline);
    if (!m) return m.error();
    if (m->type == pg::be::kErrorResponse) return server_error(m->body, "login");
    if (m->type != pg::be::kAuthentication)
      return Error{EPROTO, std::string("unexpected message '") + m->type + "' during login"};
    auto req = pg::parse_authentication(m->body);
    if (!req) return req.error();
    std::string out;
    switch (req->code) {
      case pg::kAuthOk:
        return {};
      case pg::kAuthCleartext:
        if (!secret.password)
          return Error{EACCES, "server asks for a cleartext password for \"" + user +
                                   "\", but the proxy only knows a hashed secret"};
        pg::write_password_message(out, *secret.password);
        break;
      case pg::kAuthMd5: {
        std::string hash;
        if (secret.md5_hash)
          hash = *secret.md5_hash;
        else if (secret.password)
          hash = pg::md5_password_hash(*secret.password, user);
        else
          return Error{EACCES, "server asks for md5 authentication for \"" + user +
                                   "\", but the proxy holds only a SCRAM key for it"};
        if (req->payload.size() != 4) return Error{EPROTO, "md5 request without a 4-byte salt"};
        pg::Md5Salt salt;
        std::memcpy(salt.data(), req->payload.data(), 4);
        auto response = pg::md5_salted(hash, salt);
        if (!response) return response.error();
        pg::write_password_message(out, *response);
        break;
      }
      case pg::kAuthSasl: {
        auto mechs = pg::parse_sasl_mechanisms(req->payload);
        if (!mechs) return mechs.error();
        bool has = false;
        for (auto mech : *mechs) has |= mech == "SCRAM-SHA-256";
        if (!has) return Error{EACCES, "server offers no SASL mechanism the proxy supports"};
        if (secret.password) {
          scram.emplace(pg::ScramClient::with_password(*secret.password));
        } else if (secret.client_key) {
          pg::ScramClientKeys keys;
          keys.client_key = *secret.client_key;
          if (secret.scram_secret) {
            keys.server_key = secret.scram_secret->server_key;
            keys.salt = secret.scram_secret->salt;
            keys.iterations = secret.scram_secret->iterations;
          }
          scram.emplace(pg::ScramClient::with_keys(std::move(keys)));
        } else {
          return Error{EACCES, "server asks for SCRAM for \"" + user +
                                   "\", but the proxy has no SCRAM key for it yet (a client must "
                                   "log in with SCRAM first, or give a password)"};
        }
        auto first = scram->client_first();
        if (!first) return first.error();
        pg::write_sasl_initial_response(out, "SCRAM-SHA-256", *first);
        break;
      }
      case pg::kAuthSaslContinue: {
        if (!scram) return Error{EPROTO, "SASLContinue without SASL"};
        auto final_msg = scram->server_first(req->payload);
        if (!final_msg) return final_msg.error();
        pg::write_sasl_response(out, *final_msg);
        break;
      }
      case pg::kAuthSaslFinal: {
        if (!scram) return Error{EPROTO, "SASLFinal without SASL"};
        if (auto s = scram->server_final(req->payload); !s) return s;
        continue;  // AuthenticationOk follows
      }
      default:
        return Error{EACCES, "unsupported authentication request " + std::to_string(req->code)};
    }
    if (auto s = write_all(fd, out, deadline); !s) return s;
  }
}

}  // namespace

Result<UniqueFd> connect_server(const ServerAddress& addr, Nanos deadline) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!addr.host.empty() && addr.host.front() == '/') {
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    un->sun_family = AF_UNIX;
    std::string path = addr.host + "/.s.PGSQL." + std::to_string(addr.port);
    if (path.size() >= sizeof(un->sun_path)) return Error::invalid("unix socket path too long");
    std::memcpy(un->sun_path, path.c_str(), path.size() + 1);
    len = sizeof(sockaddr_un);
  } else {
    auto r = io::resolve(io::HostPort{addr.host, addr.port}, &len);
    if (!r) return r.error();
    ss = *r;
  }
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    if (errno != EINPROGRESS && errno != EAGAIN)
      return Error::from_errno("connect to " + addr.host + ":" + std::to_string(addr.port));
    if (auto s = wait_fd(fd.get(), POLLOUT, deadline); !s)
      return Error{ETIMEDOUT,
                   "connect to " + addr.host + ":" + std::to_string(addr.port) + " timed out"};
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &el);
    if (err)
      return Error{err, "connect to " + addr.host + ":" + std::to_string(addr.port) + ": " +
                            std::strerror(err)};
  }
  if (ss.ss_family != AF_UNIX) io::tune_stream_socket(fd.get());
  return fd;
}

// SSLRequest per sslmode: 'S' -> TLS handshake; 'N' -> plaintext if the mode allows it.
Result<std::unique_ptr<SSL, SslDeleter>> negotiate_tls(int fd, const ServerAddress& addr,
                                                       const ServerTls& tls, Nanos deadline) {
  using M = ServerTls::Mode;
  std::unique_ptr<SSL, SslDeleter> none;
  if (tls.mode == M::kDisable || !tls.ctx) return none;
  std::string req;
  pg::write_ssl_request(req);
  Wire plain{fd};
  if (auto s = write_all(plain, req, deadline); !s) return s.error();
  char answer;
  if (auto s = read_exact(plain, &answer, 1, deadline); !s) return s.error();
  if (answer != 'S') {
    if (tls.mode == M::kPrefer) return none;
    return Error{EACCES, "PostgreSQL at " + addr.host + ":" + std::to_string(addr.port) +
                             " does not accept TLS, and [backend] sslmode requires it"};
  }
  std::unique_ptr<SSL, SslDeleter> ssl(SSL_new(tls.ctx->get()));
  if (!ssl) return Error{EPROTO, "SSL_new: " + io::tls_error_string()};
  SSL_set_fd(ssl.get(), fd);
  SSL_set_connect_state(ssl.get());
  if (!addr.host.empty() && addr.host.front() != '/') {
    SSL_set_tlsext_host_name(ssl.get(), addr.host.c_str());
    if (tls.mode == M::kVerifyFull) SSL_set1_host(ssl.get(), addr.host.c_str());
  }
  Wire w{fd, ssl.get()};
  for (;;) {
    int rc = SSL_connect(ssl.get());
    if (rc == 1) break;
    if (auto s = wait_ssl(w, rc, deadline, "TLS handshake with PostgreSQL"); !s) return s.error();
  }
  return ssl;
}

Result<ServerSession> pg_login(const ServerAddress& addr, const std::string& user,
                               const std::string& database, const ParamList& extra_params,
                               const LoginSecret& secret, Nanos deadline, const ServerTls& tls) {
  auto fd = connect_server(addr, deadline);
  if (!fd) return fd.error();
  auto ssl = negotiate_tls(fd->get(), addr, tls, deadline);
  if (!ssl) return ssl.error();
  Wire w{fd->get(), ssl->get()};
  ParamList params{{"user", user}, {"database", database}};
  for (const auto& p : extra_params) params.push_back(p);
  std::string out;
  pg::write_startup_message(out, params);
  if (auto s = write_all(w, out, deadline); !s) return s.error();
  if (auto s = authenticate(w, user, secret, deadline); !s) return s.error();

  ServerSession session;
  for (;;) {
    auto m = read_message(w, deadline);
    if (!m) return m.error();
    switch (m->type) {
      case pg::be::kParameterStatus: {
        auto ps = pg::parse_parameter_status(m->body);
        if (!ps) return ps.error();
        session.params.emplace_back(std::string(ps->name), std::string(ps->value));
        break;
      }
      case pg::be::kBackendKeyData: {
        auto k = pg::parse_backend_key_data(m->body);
        if (!k) return k.error();
        session.process_id = k->process_id;
        session.secret_key = k->secret_key;
        break;
      }
      case pg::be::kReadyForQuery:
        session.fd = std::move(*fd);
        session.ssl = std::move(*ssl);
        if (session.ssl) session.tls_ctx = tls.ctx;
        return session;
      case pg::be::kErrorResponse:
        return server_error(m->body, "login");
      case pg::be::kNoticeResponse:
      case pg::be::kNegotiateProtocolVersion:
        break;
      default:
        return Error{EPROTO, std::string("unexpected message '") + m->type + "' after login"};
    }
  }
}

Result<QueryResult> pg_query(ServerSession& s, const std::string& sql,
                             const std::vector<std::string>& params, Nanos deadline) {
  std::string out;
  pg::write_parse(out, "", sql);
  std::vector<std::optional<std::string_view>> values(params.begin(), params.end());
  pg::write_bind(out, "", "", values);
  pg::write_describe(out, 'P', "");
  pg::write_execute(out, "", 0);
  pg::write_sync(out);
  Wire w{s.fd.get(), s.ssl.get()};
  if (auto st = write_all(w, out, deadline); !st) return st.error();
  QueryResult result;
  std::vector<Row>& rows = result.rows;
  std::optional<Error> failure;
  for (;;) {
    auto m = read_message(w, deadline);
    if (!m) return m.error();
    switch (m->type) {
      case pg::be::kRowDescription: {
        auto cols = pg::parse_row_description(m->body);
        if (!cols) return cols.error();
        result.columns.clear();
        for (const auto& c : *cols) result.columns.emplace_back(c.name);
        break;
      }
      case pg::be::kDataRow: {
        auto r = pg::parse_data_row(m->body);
        if (!r) return r.error();
        Row row;
        for (const auto& v : *r) row.push_back(v ? std::optional<std::string>(*v) : std::nullopt);
        rows.push_back(std::move(row));
        break;
      }
      case pg::be::kErrorResponse:
        failure = server_error(m->body, "query");
        break;
      case pg::be::kReadyForQuery:
        if (failure) return *failure;
        return result;
      default:
        break;  // ParseComplete, BindComplete, CommandComplete, notices, ParameterStatus
    }
  }
}

Status pg_cancel(const ServerAddress& addr, int32_t process_id, int32_t secret_key,
                 Nanos deadline) {
  auto fd = connect_server(addr, deadline);
  if (!fd) return fd.error();
  std::string out;
  pg::write_cancel_request(out, process_id, secret_key);
  Wire w{fd->get()};
  if (auto s = write_all(w, out, deadline); !s) return s;
  // The server closes the connection after reading the request; wait for that so the cancel
  // has been delivered before we report success.
  char c;
  (void)read_exact(w, &c, 1, deadline);
  return {};
}

}  // namespace helios::pool
