// Client startup and authentication: the startup packet (SSLRequest, GSSENCRequest,
// CancelRequest, StartupMessage), limits, SCRAM-SHA-256 / md5 / trust, the welcome.
#include <chrono>
#include <cstring>
#include <random>

#include "common/log.h"
#include "pg/protocol.h"
#include "pg/reader.h"
#include "pg/scram_secret.h"
#include "pg/sqlstate.h"
#include "pg/startup.h"
#include "pg/writer.h"
#include "proxy/startup_state.h"
#include "proxy/worker.h"
#include "session/startup_parameters.h"

namespace helios::proxy {
namespace {

// Splits libpq's "options" startup parameter ("-c name=value --name=value") into parameters.
void parse_options(std::string_view options, session::ParamPairs& out) {
  std::vector<std::string> words;
  std::string cur;
  bool esc = false;
  for (char ch : options) {
    if (esc) {
      cur += ch;
      esc = false;
    } else if (ch == '\\') {
      esc = true;
    } else if (ch == ' ' || ch == '\t') {
      if (!cur.empty()) words.push_back(std::move(cur)), cur.clear();
    } else {
      cur += ch;
    }
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  for (size_t i = 0; i < words.size(); ++i) {
    std::string_view w = words[i];
    std::string kv;
    if (w == "-c" && i + 1 < words.size())
      kv = words[++i];
    else if (w.starts_with("-c"))
      kv = std::string(w.substr(2));
    else if (w.starts_with("--"))
      kv = std::string(w.substr(2));
    else
      continue;
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string name = session::lower(kv.substr(0, eq));
    for (char& ch : name)
      if (ch == '-') ch = '_';
    out.emplace_back(name, kv.substr(eq + 1));
  }
}

// The tenant of a client, from the configured startup parameter.
std::string tenant_of(const config::TenantQuotaConfig& tq, const StartupState& st) {
  std::string id;
  switch (tq.identifier.kind) {
    case config::TenantIdentifierKind::kUser:
      id = st.user;
      break;
    case config::TenantIdentifierKind::kDatabase:
      id = st.database;
      break;
    default:
      for (const auto& [k, v] : st.params)
        if (k == session::lower(tq.identifier.parameter)) id = v;
  }
  return id.empty() ? tq.default_tenant : id;
}

// The first startup parameter PostgreSQL would refuse, as (SQLSTATE, message); `exempt` is the
// proxy's own tenant parameter (identifier "parameter:<name>"), which is never a server setting.
std::optional<std::pair<std::string_view, std::string>> refused_parameter(
    const session::ParamPairs& params, std::string_view exempt) {
  for (const auto& [name, value] : params) {
    if (name == exempt) continue;
    switch (session::check_startup_parameter(name)) {
      case session::StartupParameterCheck::kOk:
        continue;
      case session::StartupParameterCheck::kFixed:
        return std::make_pair(pg::sqlstate::kCantChangeRuntimeParam,
                              "parameter \"" + name + "\" cannot be changed now");
      case session::StartupParameterCheck::kUnknown:
        return std::make_pair(pg::sqlstate::kUndefinedObject,
                              "unrecognized configuration parameter \"" + name + "\"");
    }
  }
  return std::nullopt;
}

// PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH: the largest password or SASL message it reads.
constexpr uint32_t kMaxAuthMessageBody = 65535;

}  // namespace

// Handler for typed messages during authentication: whole messages only, each at most
// kMaxAuthMessageBody. A longer one is refused from its header, before any of its body is
// buffered (the framer captures no prefix for it).
struct StartupHandler {
  Worker& w;
  Client* c;
  uint32_t prefix_wanted(char, uint32_t length) {
    return length - 4 > kMaxAuthMessageBody ? 0 : length - 4;
  }
  void on_message(const pg::FramedMessage& m) {
    if (c->state == ClientState::kClosing) return;
    if (m.body_len() > kMaxAuthMessageBody) {
      w.refuse_preauth(c, PreauthRefusal::kMessageTooLong, pg::sqlstate::kProtocolViolation,
                       "invalid message length: an authentication message of " +
                           std::to_string(m.body_len()) + " bytes (at most " +
                           std::to_string(kMaxAuthMessageBody) + ")");
      return;
    }
    if (!m.complete()) return;
    w.on_auth_message(c, m.type,
                      std::string_view(reinterpret_cast<const char*>(m.body()), m.captured()));
  }
  void on_body(uint32_t, uint32_t) {}
  void on_message_end() {}
  void on_error(const char* what) {
    w.refuse_preauth(c, PreauthRefusal::kProtocolViolation, pg::sqlstate::kProtocolViolation,
                     std::string("invalid message during authentication: ") + what);
  }
};

void Worker::fail_startup(Client* c, std::string_view sqlstate, std::string_view message) {
  if (c->state == ClientState::kClosing || c->state == ClientState::kFree) return;
  send_error(c, true, sqlstate, message);
}

void Worker::on_startup_bytes(Client* c, const uint8_t* data, uint32_t len) {
  StartupState& st = *c->startup;
  if (c->state != ClientState::kStartup) {
    if (c->state == ClientState::kAuthLookup) {
      // The client speaks before we asked: only a pipelining or broken client does that.
      refuse_preauth(c, PreauthRefusal::kProtocolViolation, pg::sqlstate::kProtocolViolation,
                     "unexpected data during authentication");
      return;
    }
    StartupHandler h{*this, c};
    c->framer.feed(data, len, h);
    return;
  }
  // The startup packet is untyped: an 8-byte header (length, code), then the declared length.
  while (len > 0 && c->state == ClientState::kStartup) {
    auto gather = [&](size_t upto) {
      size_t take = std::min<size_t>(len, upto - st.packet.size());
      st.packet.append(reinterpret_cast<const char*>(data), take);
      data += take;
      len -= uint32_t(take);
      return st.packet.size() == upto;
    };
    if (st.packet.size() < 8 && !gather(8)) break;
    auto hdr =
        pg::peek_startup_header(std::span(reinterpret_cast<const uint8_t*>(st.packet.data()), 8));
    if (!hdr) {  // oversized or malformed: refused before buffering it
      uint32_t declared =
          pg::StreamFramer::read_len(reinterpret_cast<const uint8_t*>(st.packet.data()));
      refuse_preauth(c,
                     declared > pg::kMaxStartupPacket ? PreauthRefusal::kMessageTooLong
                                                      : PreauthRefusal::kProtocolViolation,
                     pg::sqlstate::kProtocolViolation, hdr.error().message);
      return;
    }
    if (st.packet.capacity() < hdr->length) st.packet.reserve(hdr->length);  // one allocation
    if (st.packet.size() < hdr->length && !gather(hdr->length)) break;
    std::string packet = std::move(st.packet);
    st.packet.clear();
    on_startup_packet(c, packet);
  }
  // Bytes after the startup packet (a client that did not wait for our answer): auth messages.
  if (len > 0 && c->startup && c->state != ClientState::kClosing &&
      c->state != ClientState::kStartup)
    on_startup_bytes(c, data, len);
}

void Worker::on_startup_packet(Client* c, std::string_view packet) {
  auto parsed = pg::parse_startup_packet(
      std::span(reinterpret_cast<const uint8_t*>(packet.data()), packet.size()));
  if (!parsed) {
    refuse_preauth(c, PreauthRefusal::kProtocolViolation, pg::sqlstate::kProtocolViolation,
                   parsed.error().message);
    return;
  }
  StartupState& st = *c->startup;
  switch (parsed->kind) {
    case pg::StartupKind::SslRequest:
      if (!c->tls && cfg_->tls.client_tls_mode != config::ClientTlsMode::kDisable) {
        if (auto ctx = ctx_.client_tls()) {
          auto conn = io::TlsConn::accept(ctx);
          if (conn) {
            // 'S' goes out in plaintext; everything after it is TLS.
            queue_to_client(c, "S");
            c->tls = std::move(*conn);
            return;
          }
          log::warn("client TLS: {}", conn.error().message);
        }
      }
      queue_to_client(c, "N");
      return;
    case pg::StartupKind::GssEncRequest:
      // No GSS encryption: the client may go on (or try SSLRequest next).
      queue_to_client(c, "N");
      return;
    case pg::StartupKind::CancelRequest: {
      ctx_.cancel_requests.fetch_add(1, std::memory_order_relaxed);
      route_cancel(parsed->cancel_process_id, uint32_t(parsed->cancel_secret_key));
      abort_client(c);  // the protocol gives no answer to a CancelRequest
      return;
    }
    case pg::StartupKind::Startup:
      break;
  }
  if (!c->tls && cfg_->tls.client_tls_mode == config::ClientTlsMode::kRequire) {
    fail_startup(c, pg::sqlstate::kInvalidAuthorizationSpecification,
                 "the proxy accepts only TLS connections (client_tls_mode = require): connect "
                 "with sslmode=require");
    return;
  }
  std::string out;
  if (parsed->needs_protocol_negotiation())
    pg::write_negotiate_protocol_version(out, pg::kNewestProtocol, parsed->unsupported_options);
  st.user = parsed->user;
  st.database = parsed->database;
  for (auto& [k, v] : parsed->parameters) {
    std::string name = session::lower(k);
    if (name == "user" || name == "database") continue;
    if (name == "replication") {
      fail_startup(c, pg::sqlstate::kFeatureNotSupported,
                   "replication connections are not supported through the proxy");
      return;
    }
    if (name == "options") {
      parse_options(v, st.params);
      continue;
    }
    st.params.emplace_back(name, v);
  }
  if (!out.empty()) queue_to_client(c, out);
  // Parameters PostgreSQL would refuse are refused here, once, like PostgreSQL does.
  std::string exempt =
      cfg_->tenant_quotas.identifier.kind == config::TenantIdentifierKind::kParameter
          ? session::lower(cfg_->tenant_quotas.identifier.parameter)
          : std::string();
  if (auto bad = refused_parameter(st.params, exempt)) {
    refuse_preauth(c, PreauthRefusal::kInvalidStartup, bad->first, bad->second);
    return;
  }

  // Global client limit.
  int64_t n = ctx_.client_connections.fetch_add(1, std::memory_order_relaxed) + 1;
  c->counted = true;
  if (n > cfg_->connection_pool.max_client_connections) {
    refuse_login(c, LoginFailure::kClientLimit, pg::sqlstate::kTooManyConnections,
                 "too many client connections: max_client_connections is " +
                     std::to_string(cfg_->connection_pool.max_client_connections));
    return;
  }
  // The tenant is named here but counted only once the client has authenticated
  // (on_authenticated): an unauthenticated client must not use up a tenant's max_connections.
  st.tenant = tenant_of(cfg_->tenant_quotas, st);

  // Trust mode asks the same question without a password (worker_trust.cpp): the role must
  // exist and may log in, as PostgreSQL checks for its own trust method.
  if (auto known = ctx_.auth->lookup_now(st.user)) {
    on_credential(c, std::move(*known));
    return;
  }
  set_state(c, ClientState::kAuthLookup, monotonic_now());
  uint32_t slot = c->slot, gen = c->gen;
  uint16_t me = id_;
  ctx_.auth->lookup(st.user, [this, slot, gen, me](Result<pg::RoleRecord> r, pool::Messenger& m) {
    auto res = std::make_shared<Result<pg::RoleRecord>>(std::move(r));
    ctx_.workers[me]->post(
        [slot, gen, res](Worker& w) {
          if (Client* cl = w.client_at(slot, gen); cl && cl->state == ClientState::kAuthLookup)
            w.on_credential(cl, std::move(*res));
        },
        m);
  });
}

void Worker::on_credential(Client* c, Result<pg::RoleRecord> record) {
  if (cfg_->auth.type == config::AuthType::kTrust) return on_trusted(c, std::move(record));
  StartupState& st = *c->startup;
  if (!record && record.error().code != ENOENT) {
    refuse_login(c, LoginFailure::kLookup, pg::sqlstate::kConnectionFailure,
                 "the proxy could not look up user \"" + st.user + "\": " + record.error().message);
    return;
  }
  // As PostgreSQL does, a login that cannot succeed (no such role, no password, an expired
  // one) still runs the whole exchange against a mock secret and fails with 28P01 after the
  // proof: the answer and its timing don't tell which it was. The reason is only logged.
  auto unix_now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  if (!record)
    st.doomed = "no such role";
  else if (!record->secret)
    st.doomed = "the role has no password";
  else if (record->expired(unix_now_us))
    st.doomed = "its password expired (VALID UNTIL)";
  if (!st.doomed.empty()) {
    st.credential = pg::Credential(
        pg::ScramCredential{pg::make_mock_scram_secret(st.user, ctx_.mock_scram_key)});
  } else {
    st.credential = std::move(*record->secret);
    st.can_login = record->can_login;
  }
  std::string out;
  auto start_scram = [&](pg::ScramSecret s) {
    st.scram.emplace(std::move(s));
    std::string_view mechs[] = {"SCRAM-SHA-256"};
    pg::write_auth_sasl(out, mechs);
    set_state(c, ClientState::kAuthSasl, monotonic_now());
  };
  auto start_md5 = [&](std::string hash) {
    auto salt = pg::random_md5_salt();
    if (!salt) return fail_startup(c, pg::sqlstate::kInternalError, salt.error().message);
    st.md5_salt = *salt;
    st.md5_hash = std::move(hash);
    pg::write_auth_md5_password(out, st.md5_salt);
    set_state(c, ClientState::kAuthMd5, monotonic_now());
  };
  bool md5_allowed = cfg_->auth.type == config::AuthType::kMd5;
  if (auto* scram = std::get_if<pg::ScramCredential>(&*st.credential)) {
    start_scram(scram->secret);  // like PostgreSQL, md5 method + SCRAM secret = SCRAM
  } else if (auto* md5 = std::get_if<pg::Md5Credential>(&*st.credential)) {
    if (!md5_allowed) {
      set_state(c, ClientState::kAuthSasl, monotonic_now());
      return fail_startup(c, pg::sqlstate::kInvalidPassword,
                          "password authentication failed for user \"" + st.user +
                              "\": its password is stored as md5 but auth type is "
                              "scram-sha-256");
    }
    start_md5(md5->hash);
  } else {
    auto& plain = std::get<pg::PlainCredential>(*st.credential);
    if (md5_allowed) {
      start_md5(pg::md5_password_hash(plain.password, st.user));
    } else {
      auto s = pg::make_scram_secret(plain.password);
      if (!s) return fail_startup(c, pg::sqlstate::kInternalError, s.error().message);
      start_scram(std::move(*s));
    }
  }
  if (c->state != ClientState::kClosing) queue_to_client(c, out);
}

void Worker::on_auth_message(Client* c, char type, std::string_view body) {
  StartupState& st = *c->startup;
  auto auth_failed = [&] {
    ctx_.auth->login_failed(st.user);
    refuse_login(c, LoginFailure::kPassword, pg::sqlstate::kInvalidPassword,
                 "password authentication failed for user \"" + st.user + "\"", st.doomed);
  };
  // The password was right: a NOLOGIN role is refused now, as PostgreSQL does.
  auto may_log_in = [&] {
    if (st.can_login) return true;
    refuse_login(c, LoginFailure::kNoLogin, pg::sqlstate::kInvalidAuthorizationSpecification,
                 "role \"" + st.user + "\" is not permitted to log in");
    return false;
  };
  auto violation = [&](std::string message) {
    refuse_preauth(c, PreauthRefusal::kProtocolViolation, pg::sqlstate::kProtocolViolation,
                   message);
  };
  if (type != pg::fe::kPassword) {
    return violation(std::string("expected a password message, got message type '") + type + "'");
  }
  pg::MessageReader r(std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size()));
  std::string out;
  if (c->state == ClientState::kAuthMd5) {
    std::string_view response = r.get_cstring();
    if (!r.ok()) return violation("malformed password message");
    if (!pg::verify_md5_response(st.md5_hash, st.md5_salt, response)) return auth_failed();
    if (!may_log_in()) return;
    pool::LoginSecret login;
    if (auto* plain = std::get_if<pg::PlainCredential>(&*st.credential))
      login.password = plain->password;
    else
      login.md5_hash = st.md5_hash;
    on_authenticated(c, std::move(login));
    return;
  }
  if (c->state != ClientState::kAuthSasl || !st.scram)
    return violation("unexpected password message");
  if (!st.sasl_started) {
    std::string_view mech = r.get_cstring();
    int32_t len = r.get_i32();
    std::string_view data = len >= 0 ? r.get_bytes(size_t(len)) : std::string_view{};
    if (!r.ok()) return violation("malformed SASLInitialResponse");
    if (!pg::is_supported_sasl_mechanism(mech))
      return violation("client selected an invalid SASL authentication mechanism");
    auto first = st.scram->client_first(data);
    if (!first) {
      return fail_startup(c,
                          first.error().code == pg::kScramUnsupported
                              ? pg::sqlstate::kFeatureNotSupported
                              : pg::sqlstate::kProtocolViolation,
                          first.error().message);
    }
    st.sasl_started = true;
    pg::write_auth_sasl_continue(out, *first);
    queue_to_client(c, out);
    return;
  }
  auto final_msg = st.scram->client_final(body);
  if (!final_msg) {
    if (final_msg.error().code == pg::kScramWrongPassword) return auth_failed();
    return fail_startup(c, pg::sqlstate::kProtocolViolation, final_msg.error().message);
  }
  if (!may_log_in()) return;
  pg::write_auth_sasl_final(out, *final_msg);
  queue_to_client(c, out);
  pool::LoginSecret login;
  login.client_key = st.scram->client_key();
  login.scram_secret = st.scram->secret();
  if (auto* plain = std::get_if<pg::PlainCredential>(&*st.credential))
    login.password = plain->password;
  on_authenticated(c, std::move(login));
}

void Worker::on_authenticated(Client* c, pool::LoginSecret login) {
  StartupState& st = *c->startup;
  leave_preauth(c);
  // Only now the client counts against its tenant (max_connections).
  if (auto admit = ctx_.admit_client(c, st.tenant, st.user, *cfg_); !admit) {
    if (admit.error().code == EAGAIN) return wait_fleet_share(c, std::move(login));
    if (admit.error().code == EACCES)
      refuse_login(c, LoginFailure::kTenantClaim, pg::sqlstate::kInvalidAuthorizationSpecification,
                   admit.error().message);
    else
      refuse_login(c, LoginFailure::kTenantQuota, pg::sqlstate::kTooManyConnections,
                   admit.error().message);
    return;
  }
  finish_login(c, std::move(login));
}

void Worker::finish_login(Client* c, pool::LoginSecret login) {
  StartupState& st = *c->startup;
  pool::PoolKey key{st.database, st.user, ctx_.pool_group_for(c, *cfg_)};
  c->pool = ctx_.pools->get(key, *cfg_);
  // The freshest secret wins: a changed password reaches the pool at the next login.
  if (login.password || login.client_key || login.md5_hash) c->pool->set_login_secret(login);
  // Startup values are in configuration-file syntax: replayed with set_config().
  for (auto& kv : st.params) kv.second = session::config_value(kv.second);
  c->params = ctx_.params.intern(std::move(st.params));
  c->startup_params = c->params;
  c->mode = lease_mode(c);
  c->track_statements =
      c->mode != config::PoolMode::kSession &&
      cfg_->connection_pool.prepared_statement_mode == config::PreparedStatementMode::kTrack;
  c->cancel_key = cancel_secret();
  std::string out;
  pg::write_auth_ok(out);
  queue_to_client(c, out);
  if (c->pool->has_server_params()) {
    send_welcome(c);
    return;
  }
  // First client of this pool: a backend must log in first to learn the server's parameters.
  set_state(c, ClientState::kWelcome, monotonic_now());
  c->deadline = c->state_since + cfg_->connection_pool.acquire_timeout;
  need_backend(c);
}

void Worker::send_welcome(Client* c) {
  std::string out;
  auto server = c->pool->server_params();
  for (const auto& [name, value] : server) {
    const std::string* mine = c->params ? c->params->find(session::lower(name)) : nullptr;
    if (!mine || !session::is_tracked_parameter(session::lower(name))) {
      pg::write_parameter_status(out, name, value);
      continue;
    }
    // As the server reports the value once it is set (DateStyle 'SQL,DMY' is 'SQL, DMY').
    std::string reported(session::reported_value(*mine));
    if (session::lower(name) == "datestyle")
      reported = session::canonical_datestyle(reported, value).value_or(reported);
    else if (session::lower(name) == "intervalstyle")
      reported = session::lower(reported);
    pg::write_parameter_status(out, name, reported);
  }
  int32_t pid = ctx_.cancel_keys.encode(ctx_.fleet ? ctx_.fleet->peer() : 0, id_, c->slot);
  pg::write_backend_key_data(out, pid, int32_t(c->cancel_key));
  c->issued_pid = pid;
  pg::write_ready_for_query(out, 'I');
  queue_to_client(c, out);
  c->startup.reset();
  c->framer.reset();
  c->framer.release_scratch();
  set_state(c, ClientState::kIdle, monotonic_now());
}

}  // namespace helios::proxy
