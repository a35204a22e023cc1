// The user-space data path, client -> backend (see also worker_relay_backend.cpp for replies
// and worker_relay_send.cpp for the sends): moving a lease's bytes between client and backend.
// Messages are framed in both directions and forwarded as ranges of the receive buffers they
// arrived in (zero copy). Decisions read a message's prefix only. In transaction and statement
// pooling the relay also keeps the client's session portable: named prepared statements are renamed
// to process-wide names and re-prepared wherever the client lands, statements that create
// backend-bound state pin the lease, and every reply is matched to its request (ResponseTracker)
// so replies to messages the proxy injected or skipped are dropped or synthesized in place.
#include <sys/socket.h>

#include "common/log.h"
#include "pg/protocol.h"
#include "pg/reader.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "proxy/worker.h"

namespace helios::proxy {
namespace {

// Skips whitespace and SQL comments; returns the rest.
std::string_view skip_blank(std::string_view s) {
  for (;;) {
    while (!s.empty() &&
           (s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r' || s[0] == '('))
      s.remove_prefix(1);
    if (s.starts_with("--")) {
      auto nl = s.find('\n');
      s = nl == std::string_view::npos ? std::string_view{} : s.substr(nl + 1);
    } else if (s.starts_with("/*")) {
      auto end = s.find("*/");
      s = end == std::string_view::npos ? std::string_view{} : s.substr(end + 2);
    } else {
      return s;
    }
  }
}

bool keyword(std::string_view s, std::string_view kw) {
  if (s.size() < kw.size()) return false;
  for (size_t i = 0; i < kw.size(); ++i) {
    char ch = s[i];
    if (ch >= 'a' && ch <= 'z') ch = char(ch - 'a' + 'A');
    if (ch != kw[i]) return false;
  }
  if (s.size() == kw.size()) return true;
  char next = s[kw.size()];
  return !((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') ||
           (next >= '0' && next <= '9') || next == '_');
}

// True if the SQL text (a prefix of it is enough) opens a transaction block.
bool starts_transaction(std::string_view sql) {
  sql = skip_blank(sql);
  return keyword(sql, "BEGIN") || keyword(sql, "START");
}

// Splits "name\0rest" at the first NUL; false if there is none.
bool split_cstring(std::string_view s, std::string_view* name, std::string_view* rest) {
  auto nul = s.find('\0');
  if (nul == std::string_view::npos) return false;
  *name = s.substr(0, nul);
  *rest = s.substr(nul + 1);
  return true;
}

}  // namespace

// Client -> backend.
struct ClientHandler {
  Worker& w;
  Client* c;
  int32_t bid;  // provided buffer holding `data`, or kNoBuffer (TLS plaintext: copy it)
  const uint8_t* data;
  bool& forward;  // per connection: a message body continues across receive buffers
  const char* violation = nullptr;
  std::string refusal;   // why the client must be closed (a refusal we cannot answer in order)
  uint16_t queries = 0;  // statements (Query, Execute, FunctionCall) in this input
  bool inspect;          // transaction/statement pooling: session state matters

  uint32_t prefix_wanted(char type, uint32_t length) {
    uint32_t body = length - 4;
    switch (type) {
      case pg::fe::kQuery:
        return inspect ? std::min<uint32_t>(body, 4096) : 0;
      case pg::fe::kParse:
        return inspect ? std::min<uint32_t>(body, pg::kMaxPrefixBody) : 0;
      case pg::fe::kDescribe:  // the first byte says statement or portal: it sets the reply
        return std::min<uint32_t>(body, c->track_statements ? 1024 : 1);
      case pg::fe::kBind:
      case pg::fe::kClose:
        return c->track_statements ? std::min<uint32_t>(body, 1024) : 0;
      default:
        return 0;
    }
  }

  std::string_view body_of(const pg::FramedMessage& m) {
    return {reinterpret_cast<const char*>(m.body()), m.captured()};
  }
  void push_prefix(const pg::FramedMessage& m) {
    if (m.in_place && bid != kNoBuffer)
      c->to_backend.push_borrowed(*w.chunks_, uint16_t(bid), data + m.offset, m.prefix_len);
    else if (m.in_place)
      c->to_backend.push_owned(
          *w.chunks_,
          std::string_view(reinterpret_cast<const char*>(data + m.offset), m.prefix_len));
    else
      c->to_backend.push_owned(
          *w.chunks_, std::string_view(reinterpret_cast<const char*>(m.prefix), m.prefix_len));
  }
  void track(session::Expect e, session::Reply r = session::Reply::kForward, uint32_t stmt = 0) {
    c->tracker.push(w.track_pool_, e, r, stmt);
  }
  bool leased() const { return c->backend != nullptr; }
  // No backend held, nothing queued for one, no reply owed: the proxy may answer a message
  // itself without reordering the client's replies.
  bool nothing_in_flight() const {
    return !leased() && c->to_backend.empty() && c->tracker.empty();
  }
  session::ClientSession& session() {
    if (!c->session) c->session = std::make_unique<session::ClientSession>();
    return *c->session;
  }
  // Before a message that uses `stmt`: leased -> re-prepare inline if needed; queued -> record.
  void need_statement(const session::PreparedPtr& stmt) {
    if (leased()) {
      std::string out;
      w.ensure_prepared(c, c->backend, stmt, out, /*front=*/false);
      if (!out.empty()) c->to_backend.push_owned(*w.chunks_, out);
    } else {
      session().pending.push_back({stmt, false});
    }
  }

  void on_message(const pg::FramedMessage& m) {
    forward = true;
    if (c->skip_to_sync) {  // after a refused extended-protocol message: discard until Sync
      forward = false;
      if (m.type == pg::fe::kSync) {
        c->skip_to_sync = false;
        std::string out;
        pg::write_ready_for_query(out, 'I');
        w.queue_to_client(c, out);
      }
      return;
    }
    switch (m.type) {
      case pg::fe::kTerminate:
        c->terminate = true;
        forward = false;
        return;
      case pg::fe::kQuery: {
        std::string_view sql = body_of(m);
        if (c->mode == config::PoolMode::kStatement && starts_transaction(sql)) {
          refuse_transaction(m);
          return;
        }
        std::string mapped;  // the text with the server's statement names (EXECUTE, DEALLOCATE)
        if (inspect && !map_statement_names(m, sql, &mapped)) return;
        if (inspect && !inspected(sql, m)) return;
        ++c->outstanding;
        ++c->rfq_sent;
        ++queries;
        c->unsynced = false;
        track(session::Expect::kQuery);
        if (!mapped.empty()) {
          push_query(m, mapped);
          return;
        }
        break;
      }
      case pg::fe::kFunctionCall:
        if (inspect) session().probe_wanted = true;  // a function the proxy cannot see into
        ++queries;
        ++c->outstanding;
        ++c->rfq_sent;
        c->unsynced = false;
        track(session::Expect::kQuery);
        break;
      case pg::fe::kSync:
        c->unsynced = false;
        // A batch the proxy answered entirely (named Parses while no backend is held): no
        // server round trip at all.
        if (!leased() && c->to_backend.empty() && !c->tracker.empty() &&
            c->tracker.only_synthetic()) {
          track(session::Expect::kSync, session::Reply::kSynthReady);
          forward = false;
          return;
        }
        ++c->outstanding;
        ++c->rfq_sent;
        track(session::Expect::kSync);
        break;
      case pg::fe::kParse:
        c->unsynced = true;
        if (inspect && on_parse(m)) return;
        track(session::Expect::kParse);
        break;
      case pg::fe::kBind:
        c->unsynced = true;
        if (c->track_statements && on_bind(m)) return;
        track(session::Expect::kBind);
        break;
      case pg::fe::kExecute:
        ++queries;
        c->unsynced = true;
        track(session::Expect::kExecute);
        break;
      case pg::fe::kDescribe:
        c->unsynced = true;
        if (c->track_statements && on_describe(m)) return;
        if (m.captured() >= 1 && m.body()[0] == 'S')
          track(session::Expect::kDescribeStmt);
        else
          track(session::Expect::kDescribePortal);
        break;
      case pg::fe::kClose:
        c->unsynced = true;
        if (c->track_statements && on_close(m)) return;
        track(session::Expect::kClose);
        break;
      default:  // Flush, CopyData, CopyDone, CopyFail: no reply of their own
        break;
    }
    push_prefix(m);
  }

  // A statement's text: its session effects applied (false on a refusal, see effects()), and a
  // session-state probe wanted at the lease's end if it may have changed more than they show.
  bool inspected(std::string_view sql, const pg::FramedMessage& m) {
    auto fx = session::inspect_sql(sql, m.complete());
    if (!effects(fx, m)) return false;
    if (session::effects_need_probe(fx, w.cfg_->connection_pool.track_parameters) ||
        session::may_change_session(sql, m.complete()))
      session().probe_wanted = true;
    return true;
  }

  // Applies a statement's session effects; on a refusal the message is answered (or the client
  // closed) and false is returned.
  bool effects(const std::vector<session::SessionEffect>& fx, const pg::FramedMessage& m) {
    if (fx.empty()) return true;
    std::string why;
    if (w.apply_effects(c, fx, &why)) return true;
    forward = false;
    bool quiet = nothing_in_flight();
    if (!quiet) {
      refusal = why;
      return false;
    }
    std::string out;
    pg::write_error_response(
        out, "ERROR", pg::sqlstate::kFeatureNotSupported, why, {},
        "This proxy runs with pin_policy = \"error\": state that would bind the "
        "client to one server connection is refused.");
    if (m.type == pg::fe::kQuery)
      pg::write_ready_for_query(out, 'I');
    else
      c->skip_to_sync = true;
    w.queue_to_client(c, out);
    return false;
  }

  // A simple Query naming the client's protocol-prepared statements (EXECUTE, DEALLOCATE): the
  // text to send instead goes to `mapped`. False if the Query was answered or refused here.
  bool map_statement_names(const pg::FramedMessage& m, std::string_view sql, std::string* mapped) {
    if (!c->track_statements) return true;
    bool complete = m.complete();
    if (complete && !sql.empty() && sql.back() == '\0') sql.remove_suffix(1);
    bool quiet = nothing_in_flight() && !c->unsynced;
    switch (w.map_statement_sql(c, sql, complete, /*simple_query=*/true, quiet, mapped, &refusal)) {
      case Worker::StatementSql::kAnswered:
      case Worker::StatementSql::kRefused:
        forward = false;
        mapped->clear();
        return false;
      case Worker::StatementSql::kRewritten:
      case Worker::StatementSql::kNone:
        break;
    }
    return true;
  }
  // The Query with its captured text replaced; the rest of a long body streams on unchanged.
  void push_query(const pg::FramedMessage& m, std::string_view text) {
    std::string out;
    bool complete = m.complete();
    pg::MessageWriter mw(out);
    mw.begin(pg::fe::kQuery).put_bytes(text);
    if (complete) mw.put_u8(0);
    mw.end(m.body_left);
    c->to_backend.push_owned(*w.chunks_, out);
  }

  // Named Parse: rename to the shared server-side name. Returns true if handled (not forwarded
  // as is).
  bool on_parse(const pg::FramedMessage& m) {
    std::string_view name, tail;
    if (!split_cstring(body_of(m), &name, &tail)) return false;
    std::string_view query, rest;
    if (split_cstring(tail, &query, &rest)) {
      if (c->mode == config::PoolMode::kStatement && starts_transaction(query)) {
        refuse_transaction(m);
        return true;
      }
      // A statement the proxy tracks (interned below) changes the session at each execution
      // (on_bind), not at its Parse.
      bool tracked = !name.empty() && c->track_statements && m.complete();
      if (!tracked && !inspected(query, m)) return true;
    }
    if (name.empty()) return on_unnamed_parse(m, tail);
    auto mode = w.cfg_->connection_pool.prepared_statement_mode;
    if (mode == config::PreparedStatementMode::kDisable) {
      forward = false;
      std::string out;
      pg::write_error_response(out, "ERROR", pg::sqlstate::kFeatureNotSupported,
                               "named prepared statements are disabled "
                               "(prepared_statement_mode = \"disable\")");
      bool quiet = nothing_in_flight();
      if (!quiet) {
        refusal = "named prepared statements are disabled (prepared_statement_mode = \"disable\")";
        return true;
      }
      c->skip_to_sync = true;
      w.queue_to_client(c, out);
      return true;
    }
    session::PreparedPtr stmt;
    if (c->track_statements && m.complete()) {
      if (auto it = session().statements.find(std::string(name)); it != session().statements.end())
        return on_duplicate_parse(name, it->second, tail);
      stmt = w.ctx_.prepared.intern(
          tail, uint64_t(w.cfg_->connection_pool.prepared_statement_memory_mb) << 20);
      if (!stmt) {
        log::debug(
            "worker {}: prepared_statement_memory_mb reached: statement {} stays on its "
            "backend",
            w.id_, name);
        // Not tracked after all: its text's session effects apply now, as for any untracked one.
        std::string_view query, rest;
        if (split_cstring(tail, &query, &rest) && !inspected(query, m)) return true;
      }
    }
    if (!stmt) {
      // "named" mode, a Parse too large to keep, or the texts held are at their limit: the
      // statement lives on this backend only.
      std::vector<session::SessionEffect> pin{{session::SessionEffect::Kind::kPin,
                                               session::PinReason::kNamedStatement,
                                               std::string(name), ""}};
      std::string why;
      if (!w.apply_effects(c, pin, &why)) {
        refusal = why;
        forward = false;
        return true;
      }
      return false;
    }
    // pin_policy = "error" refuses a statement that would pin at its Parse, not at a later Bind.
    if (w.cfg_->connection_pool.pin_policy == config::PinPolicy::kError) {
      std::vector<session::SessionEffect> pins;
      for (const auto& e : stmt->effects)
        if (session::pins_session(e, w.cfg_->connection_pool.track_parameters)) pins.push_back(e);
      if (!effects(pins, m)) return true;
    }
    session().statements[std::string(name)] = stmt;
    forward = false;
    if (!leased()) {
      // No backend held: answer the Parse now and prepare the statement on whatever backend
      // first needs it (so a client that prepares synchronously, like pgbench -M prepared, never
      // waits for a backend just to prepare). A statement the server rejects is reported at
      // that first use, in place of the message that needed it.
      track(session::Expect::kParse, session::Reply::kSynthParse, stmt->id);
      return true;
    }
    if (leased() && c->backend->statements.contains(stmt->id)) {
      c->backend->statements.touch(stmt->id);
      track(session::Expect::kParse, session::Reply::kSynthParse,
            stmt->id);  // already there: answer ourselves
      return true;
    }
    std::string out;
    pg::write_close(out, 'S', stmt->server_name);
    pg::write_parse_raw(out, stmt->server_name, stmt->tail);
    track(session::Expect::kClose, session::Reply::kSwallow, stmt->id);
    track(session::Expect::kParse, session::Reply::kForward, stmt->id);
    if (leased()) {
      auto evicted = c->backend->statements.insert(
          stmt->id, size_t(w.cfg_->connection_pool.prepared_statement_cache_size));
      if (evicted) {
        pg::write_close(out, 'S', "hp_" + std::to_string(*evicted));
        track(session::Expect::kClose, session::Reply::kSwallow);
      }
    } else {
      session().pending.push_back({stmt, true});
    }
    c->to_backend.push_owned(*w.chunks_, out);
    return true;
  }

  // A Parse of a name the client prepared already: the server answers 42P05 (after checking the
  // query, as directly) to a Parse under the existing statement's server name, which the backend
  // is made to hold first; with no backend and nothing in flight, the proxy answers it.
  bool on_duplicate_parse(std::string_view name, const session::PreparedPtr& existing,
                          std::string_view tail) {
    forward = false;
    if (nothing_in_flight()) {
      std::string out;
      pg::write_error_response(out, "ERROR", pg::sqlstate::kDuplicatePreparedStatement,
                               "prepared statement \"" + std::string(name) + "\" already exists");
      c->skip_to_sync = true;
      w.queue_to_client(c, out);
      return true;
    }
    need_statement(existing);
    std::string out;
    pg::write_parse_raw(out, existing->server_name, tail);
    c->to_backend.push_owned(*w.chunks_, out);
    track(session::Expect::kParse);  // no statement: its failure must not forget the existing one
    return true;
  }

  // Unnamed Parse: lives until the next Parse and passes through, unless its query is SQL
  // naming the client's protocol-prepared statements (psycopg sends DEALLOCATE this way).
  bool on_unnamed_parse(const pg::FramedMessage& m, std::string_view tail) {
    std::string_view query, rest;
    if (!c->track_statements || !m.complete() || !split_cstring(tail, &query, &rest)) return false;
    std::string mapped;
    switch (w.map_statement_sql(c, query, /*complete=*/true, /*simple_query=*/false,
                                /*quiet=*/false, &mapped, &refusal)) {
      case Worker::StatementSql::kNone:
      case Worker::StatementSql::kAnswered:  // not for a Parse
        return false;
      case Worker::StatementSql::kRefused:
        forward = false;
        return true;
      case Worker::StatementSql::kRewritten:
        break;
    }
    mapped += '\0';
    mapped += rest;
    std::string out;
    pg::write_parse_raw(out, "", mapped);
    c->to_backend.push_owned(*w.chunks_, out);
    track(session::Expect::kParse);
    forward = false;
    return true;
  }

  // Bind of a named statement: same message with the server-side name.
  bool on_bind(const pg::FramedMessage& m) {
    std::string_view portal, rest1, stmt_name, rest2;
    if (!split_cstring(body_of(m), &portal, &rest1) || !split_cstring(rest1, &stmt_name, &rest2))
      return false;
    if (stmt_name.empty() || !c->session) return false;
    auto it = c->session->statements.find(std::string(stmt_name));
    if (it == c->session->statements.end()) return false;  // unknown: the server says so
    session::PreparedPtr stmt = it->second;
    if (stmt->may_change_session ||
        session::effects_need_probe(stmt->effects, w.cfg_->connection_pool.track_parameters))
      c->session->probe_wanted = true;
    // What the statement does to the session happens at every execution (a prepared SET or
    // pg_advisory_lock($1) run again).
    if (!stmt->effects.empty()) {
      std::string why;
      if (!w.apply_effects(c, stmt->effects, &why)) {
        refusal = why;  // pin_policy changed since its Parse was accepted
        forward = false;
        return true;
      }
    }
    need_statement(stmt);
    std::string out;
    pg::MessageWriter mw(out);
    mw.begin(pg::fe::kBind).put_cstring(portal).put_cstring(stmt->server_name).put_bytes(rest2);
    mw.end(m.body_left);
    c->to_backend.push_owned(*w.chunks_, out);
    track(session::Expect::kBind, session::Reply::kForward, stmt->id);
    // forward stays true: the rest of the body (parameter values) streams through unchanged.
    return true;
  }

  bool on_describe(const pg::FramedMessage& m) {
    std::string_view body = body_of(m), name, rest;
    if (body.size() < 2 || body[0] != 'S' || !c->session) return false;
    if (!split_cstring(body.substr(1), &name, &rest) || name.empty()) return false;
    auto it = c->session->statements.find(std::string(name));
    if (it == c->session->statements.end()) return false;
    session::PreparedPtr stmt = it->second;
    need_statement(stmt);
    std::string out;
    pg::write_describe(out, 'S', stmt->server_name);
    c->to_backend.push_owned(*w.chunks_, out);
    track(session::Expect::kDescribeStmt, session::Reply::kForward, stmt->id);
    forward = false;
    return true;
  }

  // Close of a named statement: the server copy may be shared, so only the client's name goes;
  // the proxy answers CloseComplete itself, in its place in the reply stream.
  bool on_close(const pg::FramedMessage& m) {
    std::string_view body = body_of(m), name, rest;
    if (body.size() < 2 || body[0] != 'S' || !c->session) return false;
    if (!split_cstring(body.substr(1), &name, &rest) || name.empty()) return false;
    auto it = c->session->statements.find(std::string(name));
    if (it == c->session->statements.end()) return false;
    c->session->statements.erase(it);
    track(session::Expect::kClose, session::Reply::kSynthClose);
    forward = false;
    return true;
  }

  // Statement mode: a statement that opens a transaction block is answered by the proxy.
  void refuse_transaction(const pg::FramedMessage& m) {
    forward = false;
    static constexpr std::string_view kMsg =
        "transaction blocks are not allowed in statement pooling mode";
    bool quiet = nothing_in_flight() && !c->unsynced;
    if (!quiet) {  // answering locally would reorder replies: give up on this client
      refusal = kMsg;
      return;
    }
    std::string out;
    pg::write_error_response(out, "ERROR", pg::sqlstate::kFeatureNotSupported, kMsg, {},
                             "Use transaction or session pooling for this client, or run the "
                             "statements without BEGIN.");
    if (m.type == pg::fe::kQuery)
      pg::write_ready_for_query(out, 'I');
    else
      c->skip_to_sync = true;
    w.queue_to_client(c, out);
  }

  void on_body(uint32_t off, uint32_t n) {
    if (!forward) return;
    if (bid != kNoBuffer)
      c->to_backend.push_borrowed(*w.chunks_, uint16_t(bid), data + off, n);
    else
      c->to_backend.push_owned(*w.chunks_,
                               std::string_view(reinterpret_cast<const char*>(data + off), n));
  }
  void on_message_end() {}
  void on_error(const char* what) { violation = what; }
};

void Worker::on_client_data(Client* c, int32_t bid, const uint8_t* data, uint32_t len) {
  // Kernel data path: the worker relays this itself, so the replies come back to it first.
  if (c->kernel && c->kernel->lease && !settle_kernel_lease(c)) return;
  if (stopping_ && c->state == ClientState::kIdle && c->ran_transaction) {
    // Draining: no new transactions from clients that already had theirs (a client saying
    // goodbye just goes).
    if (data[0] == pg::fe::kTerminate)
      c->fatal_sent = false, close_client(c);
    else
      send_error(c, true, pg::sqlstate::kAdminShutdown, "the proxy is shutting down");
    return;
  }
  c->last_activity = now_;
  if (c->backend) {  // these go to this backend only: no other may take the transaction now
    // Its server ended while a send was in flight: read that end again, the client gets it.
    if (c->retry.deferred) arm_backend_recv(c->backend);
    c->retry.disarm();
  }
  ClientHandler h{*this, c, bid, data, c->forward_body};
  h.inspect = c->mode != config::PoolMode::kSession;
  c->framer.feed(data, len, h);
  if (h.violation) {
    std::string why = std::string("invalid message from client: ") + h.violation;
    ctx_.metrics.count_protocol_violation();
    security_log(c, "closed for a protocol violation: " + why);
    send_error(c, true, pg::sqlstate::kProtocolViolation, why);
    return;
  }
  if (!h.refusal.empty()) {
    send_error(c, true, pg::sqlstate::kFeatureNotSupported, h.refusal);
    return;
  }
  if (c->terminate) {
    close_client(c);
    return;
  }
  emit_synthetic(c);
  flush_client(c);
  if (h.queries) {
    // QPS quota: statements wait for tokens before they reach a backend.
    c->pending_queries = uint16_t(c->pending_queries + h.queries);
    if (!admit_queries(c, now_) && !c->throttled) {
      c->throttled = true;
      c->throttle_since = now_;
      if (c->state == ClientState::kIdle) set_state(c, ClientState::kThrottled, now_);
    }
  }
  switch (c->state) {
    case ClientState::kIdle:
      if (!c->to_backend.empty()) need_backend(c);
      break;
    case ClientState::kThrottled:
      break;
    case ClientState::kActive:
      flush_backend(c);
      // A lease can end on the client side too: a Close answered by the proxy, say.
      maybe_end_lease(c);
      break;
    default:  // kQueued / kWelcome: bytes wait in to_backend until the lease starts
      break;
  }
  update_client_input(c);
}

}  // namespace helios::proxy
