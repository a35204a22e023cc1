// The user-space data path: moving a lease's bytes between client and backend. Messages are
// framed in both directions and forwarded as ranges of the receive buffers they arrived in
// (zero copy). Decisions read a message's prefix only. In transaction and statement pooling the
// relay also keeps the client's session portable: named prepared statements are renamed to
// process-wide names and re-prepared wherever the client lands, statements that create
// backend-bound state pin the lease, and every reply is matched to its request (ResponseTracker)
// so replies to messages the proxy injected or skipped are dropped or synthesized in place.
#include <sys/socket.h>

#include "common/log.h"
#include "pg/protocol.h"
#include "pg/reader.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "server/worker.h"

namespace helios::server {
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

void put_header(std::string& out, char type, size_t body_len) {
  uint32_t len = uint32_t(body_len + 4);
  out += type;
  out += char(len >> 24);
  out += char(len >> 16);
  out += char(len >> 8);
  out += char(len);
}

void write_close_stmt(std::string& out, std::string_view name) {
  put_header(out, 'C', 1 + name.size() + 1);
  out += 'S';
  out += name;
  out += '\0';
}

void write_parse_tail(std::string& out, std::string_view name, std::string_view tail) {
  put_header(out, 'P', name.size() + 1 + tail.size());
  out += name;
  out += '\0';
  out += tail;
}

}  // namespace

// Makes sure the backend has `stmt` before the message being relayed: appends Close+Parse (both
// replies swallowed) to `out` if it does not, and evicts the least recently used statement over
// the cache cap. `front`: the bytes go in front of queued messages (lease start).
void Worker::ensure_prepared(Client* c, pool::Backend* b, const PreparedPtr& stmt, std::string& out,
                             bool front) {
  auto push = [&](Expect e) {
    if (front)
      c->tracker.push_front(track_pool_, e, Reply::kSwallow, stmt->id);
    else
      c->tracker.push(track_pool_, e, Reply::kSwallow, stmt->id);
  };
  if (b->statements.contains(stmt->id)) {
    b->statements.touch(stmt->id);
    return;
  }
  // Close first: harmless when absent, and correct if the session has a stale copy.
  write_close_stmt(out, stmt->server_name);
  write_parse_tail(out, stmt->server_name, stmt->tail);
  if (front) {  // entries go in front in reverse order
    push(Expect::kParse);
    push(Expect::kClose);
  } else {
    push(Expect::kClose);
    push(Expect::kParse);
  }
  auto evicted =
      b->statements.insert(stmt->id, size_t(cfg_->connection_pool.prepared_statement_cache_size));
  if (evicted) {
    std::string name = "hp_" + std::to_string(*evicted);
    write_close_stmt(out, name);
    if (front)
      c->tracker.push_front(track_pool_, Expect::kClose, Reply::kSwallow);
    else
      c->tracker.push(track_pool_, Expect::kClose, Reply::kSwallow);
  }
}

void Worker::emit_synthetic(Client* c) {
  if (c->tracker.empty()) return;
  c->tracker.drain_synthetic(track_pool_, [&](Reply r) {
    std::string out;
    switch (r) {
      case Reply::kSynthParse:
        pg::write_parse_complete(out);
        break;
      case Reply::kSynthClose:
        pg::write_close_complete(out);
        break;
      case Reply::kSynthReady:
        pg::write_ready_for_query(out, c->backend ? c->backend->tx_status : 'I');
        break;
      default:
        break;
    }
    c->to_client.push_owned(*chunks_, out);
  });
}

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
  void track(Expect e, Reply r = Reply::kForward, uint32_t stmt = 0) {
    c->tracker.push(w.track_pool_, e, r, stmt);
  }
  bool leased() const { return c->backend != nullptr; }
  // No backend held, nothing queued for one, no reply owed: the proxy may answer a message
  // itself without reordering the client's replies.
  bool nothing_in_flight() const {
    return !leased() && c->to_backend.empty() && c->tracker.empty();
  }
  ClientSession& session() {
    if (!c->session) c->session = std::make_unique<ClientSession>();
    return *c->session;
  }
  // Before a message that uses `stmt`: leased -> re-prepare inline if needed; queued -> record.
  void need_statement(const PreparedPtr& stmt) {
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
        if (c->mode == control::PoolMode::kStatement && starts_transaction(sql)) {
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
        track(Expect::kQuery);
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
        track(Expect::kQuery);
        break;
      case pg::fe::kSync:
        c->unsynced = false;
        // A batch the proxy answered entirely (named Parses while no backend is held): no
        // server round trip at all.
        if (!leased() && c->to_backend.empty() && !c->tracker.empty() &&
            c->tracker.only_synthetic()) {
          track(Expect::kSync, Reply::kSynthReady);
          forward = false;
          return;
        }
        ++c->outstanding;
        ++c->rfq_sent;
        track(Expect::kSync);
        break;
      case pg::fe::kParse:
        c->unsynced = true;
        if (inspect && on_parse(m)) return;
        track(Expect::kParse);
        break;
      case pg::fe::kBind:
        c->unsynced = true;
        if (c->track_statements && on_bind(m)) return;
        track(Expect::kBind);
        break;
      case pg::fe::kExecute:
        ++queries;
        c->unsynced = true;
        track(Expect::kExecute);
        break;
      case pg::fe::kDescribe:
        c->unsynced = true;
        if (c->track_statements && on_describe(m)) return;
        if (m.captured() >= 1 && m.body()[0] == 'S')
          track(Expect::kDescribeStmt);
        else
          track(Expect::kDescribePortal);
        break;
      case pg::fe::kClose:
        c->unsynced = true;
        if (c->track_statements && on_close(m)) return;
        track(Expect::kClose);
        break;
      default:  // Flush, CopyData, CopyDone, CopyFail: no reply of their own
        break;
    }
    push_prefix(m);
  }

  // A statement's text: its session effects applied (false on a refusal, see effects()), and a
  // session-state probe wanted at the lease's end if it may have changed more than they show.
  bool inspected(std::string_view sql, const pg::FramedMessage& m) {
    auto fx = inspect_sql(sql, m.complete());
    if (!effects(fx, m)) return false;
    if (effects_need_probe(fx, w.cfg_->connection_pool.track_parameters) ||
        may_change_session(sql, m.complete()))
      session().probe_wanted = true;
    return true;
  }

  // Applies a statement's session effects; on a refusal the message is answered (or the client
  // closed) and false is returned.
  bool effects(const std::vector<SessionEffect>& fx, const pg::FramedMessage& m) {
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
    put_header(out, pg::fe::kQuery, text.size() + (complete ? 1 : 0) + m.body_left);
    out += text;
    if (complete) out += '\0';
    c->to_backend.push_owned(*w.chunks_, out);
  }

  // Named Parse: rename to the shared server-side name. Returns true if handled (not forwarded
  // as is).
  bool on_parse(const pg::FramedMessage& m) {
    std::string_view name, tail;
    if (!split_cstring(body_of(m), &name, &tail)) return false;
    std::string_view query, rest;
    if (split_cstring(tail, &query, &rest)) {
      if (c->mode == control::PoolMode::kStatement && starts_transaction(query)) {
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
    if (mode == control::PreparedStatementMode::kDisable) {
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
    PreparedPtr stmt;
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
      std::vector<SessionEffect> pin{
          {SessionEffect::Kind::kPin, PinReason::kNamedStatement, std::string(name), ""}};
      std::string why;
      if (!w.apply_effects(c, pin, &why)) {
        refusal = why;
        forward = false;
        return true;
      }
      return false;
    }
    // pin_policy = "error" refuses a statement that would pin at its Parse, not at a later Bind.
    if (w.cfg_->connection_pool.pin_policy == control::PinPolicy::kError) {
      std::vector<SessionEffect> pins;
      for (const auto& e : stmt->effects)
        if (pins_session(e, w.cfg_->connection_pool.track_parameters)) pins.push_back(e);
      if (!effects(pins, m)) return true;
    }
    session().statements[std::string(name)] = stmt;
    forward = false;
    if (!leased()) {
      // No backend held: answer the Parse now and prepare the statement on whatever backend
      // first needs it (so a client that prepares synchronously, like pgbench -M prepared, never
      // waits for a backend just to prepare). A statement the server rejects is reported at
      // that first use, in place of the message that needed it.
      track(Expect::kParse, Reply::kSynthParse, stmt->id);
      return true;
    }
    if (leased() && c->backend->statements.contains(stmt->id)) {
      c->backend->statements.touch(stmt->id);
      track(Expect::kParse, Reply::kSynthParse, stmt->id);  // already there: answer ourselves
      return true;
    }
    std::string out;
    write_close_stmt(out, stmt->server_name);
    write_parse_tail(out, stmt->server_name, stmt->tail);
    track(Expect::kClose, Reply::kSwallow, stmt->id);
    track(Expect::kParse, Reply::kForward, stmt->id);
    if (leased()) {
      auto evicted = c->backend->statements.insert(
          stmt->id, size_t(w.cfg_->connection_pool.prepared_statement_cache_size));
      if (evicted) {
        write_close_stmt(out, "hp_" + std::to_string(*evicted));
        track(Expect::kClose, Reply::kSwallow);
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
  bool on_duplicate_parse(std::string_view name, const PreparedPtr& existing,
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
    write_parse_tail(out, existing->server_name, tail);
    c->to_backend.push_owned(*w.chunks_, out);
    track(Expect::kParse);  // no statement: its failure must not forget the existing one
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
    write_parse_tail(out, "", mapped);
    c->to_backend.push_owned(*w.chunks_, out);
    track(Expect::kParse);
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
    PreparedPtr stmt = it->second;
    if (stmt->may_change_session ||
        effects_need_probe(stmt->effects, w.cfg_->connection_pool.track_parameters))
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
    size_t body = portal.size() + 1 + stmt->server_name.size() + 1 + rest2.size() + m.body_left;
    put_header(out, 'B', body);
    out += portal;
    out += '\0';
    out += stmt->server_name;
    out += '\0';
    out += rest2;
    c->to_backend.push_owned(*w.chunks_, out);
    track(Expect::kBind, Reply::kForward, stmt->id);
    // forward stays true: the rest of the body (parameter values) streams through unchanged.
    return true;
  }

  bool on_describe(const pg::FramedMessage& m) {
    std::string_view body = body_of(m), name, rest;
    if (body.size() < 2 || body[0] != 'S' || !c->session) return false;
    if (!split_cstring(body.substr(1), &name, &rest) || name.empty()) return false;
    auto it = c->session->statements.find(std::string(name));
    if (it == c->session->statements.end()) return false;
    PreparedPtr stmt = it->second;
    need_statement(stmt);
    std::string out;
    put_header(out, 'D', 1 + stmt->server_name.size() + 1);
    out += 'S';
    out += stmt->server_name;
    out += '\0';
    c->to_backend.push_owned(*w.chunks_, out);
    track(Expect::kDescribeStmt, Reply::kForward, stmt->id);
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
    track(Expect::kClose, Reply::kSynthClose);
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
  h.inspect = c->mode != control::PoolMode::kSession;
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

void Worker::flush_backend(Client* c) {
  pool::Backend* b = c->backend;
  if (!b || c->throttled || c->to_backend.in_flight()) return;
  if (c->to_backend.empty() && !(b->tls && !b->tls->out().empty() && !b->tls->out().in_flight()))
    return;
  if (!c->txn_started) c->txn_started = now_;
  if (!c->query_started) c->query_started = now_;
  if (b->tls) {  // encrypt what is queued; the ciphertext queue is what goes out
    c->to_backend.drain(*chunks_, [&](const uint8_t* d, uint32_t n) {
      if (auto st = b->tls->write(std::string_view(reinterpret_cast<const char*>(d), n), *chunks_);
          !st)
        log::warn("backend pid {}: TLS: {}", b->process_id, st.error().message);
    });
    if (b->tls->out().in_flight() || b->tls->out().empty()) return;
    submit_send(b->tls->out(), b->fd.get(), pack(Op::kBackendSend, c->slot, c->gen));
    ++c->inflight;
    ++b->inflight;
    ++b->sends_inflight;
    c->sending_to = b;
    return;
  }
  if (c->kernel) maybe_splice(c, b);  // the replies to what goes now may go through the kernel
  submit_send(c->to_backend, b->fd.get(), pack(Op::kBackendSend, c->slot, c->gen));
  ++c->inflight;
  ++b->inflight;
  ++b->sends_inflight;
  c->sending_to = b;
}

void Worker::on_backend_send(Client* c, int res) {
  --c->inflight;
  pool::Backend* b = c->sending_to;
  c->sending_to = nullptr;
  --b->inflight;
  --b->sends_inflight;
  io::SendQueue& q = b->tls ? b->tls->out() : c->to_backend;
  complete_send(q, res);
  if (c->backend == b && c->retry.deferred) {
    // Its server ended before answering while this send was in flight: now the transaction
    // can go to another backend.
    if (!retry_lease(c, b)) {
      c->retry.disarm();
      c->backend = nullptr;
      ctx_.on_lease_end(c);
      send_error(c, true, pg::sqlstate::kConnectionFailure,
                 "server closed the connection unexpectedly");
    }
    b->finish = pool::Backend::Finish::kDiscard;
  } else if (res < 0 && c->backend == b && c->retry.armed && retry_lease(c, b)) {
    b->finish = pool::Backend::Finish::kDiscard;
  } else if (res < 0) {
    b->broken = true;
    q.clear(*chunks_);
    c->to_backend.clear(*chunks_);
    if (c->backend == b) {
      send_error(c, true, pg::sqlstate::kConnectionFailure,
                 "lost the connection to the database server");
    }
  } else if (c->backend == b) {
    flush_backend(c);
    update_client_input(c);
  }
  if (b->finish != pool::Backend::Finish::kNone) finish_backend(b);
  maybe_free(c);
}

void Worker::update_client_input(Client* c) {
  if (c->state == ClientState::kClosing || c->state == ClientState::kFree) return;
  uint32_t to_server = c->to_backend.bytes(), to_client = client_backlog(c);
  if (!c->recv_paused && (to_server > kPauseBytes || to_client > kPauseBytes))
    pause_client_input(c);
  else if (c->recv_paused && to_server < kResumeBytes && to_client < kResumeBytes)
    resume_client_input(c);
}

void Worker::pause_client_input(Client* c) {
  if (c->recv_paused) return;
  c->recv_paused = true;
  if (c->recv_armed) {
    io_uring_sqe* sqe = ring_->sqe();
    io_uring_prep_cancel64(sqe, pack(Op::kClientRecv, c->slot, c->gen), 0);
    sqe->user_data = pack(Op::kCancelOp, 0, 0);
  }
}

void Worker::resume_client_input(Client* c) {
  c->recv_paused = false;
  arm_client_recv(c);
}

// Backend -> client.
struct BackendHandler {
  Worker& w;
  pool::Backend* b;
  Client* c;    // nullptr while the backend is being cleaned up after its client left
  int32_t bid;  // provided buffer holding `data`, or kNoBuffer (TLS plaintext: copy it)
  const uint8_t* data;
  bool& forward;  // per backend: a message body continues across receive buffers
  bool lease_may_end = false;
  bool desync = false;           // a reply no request asked for: the session can't be trusted
  bool injected_failed = false;  // the error being handled answers a message the proxy injected
  // The server ended the session after the lease's transaction was answered in full: the
  // client owes and is owed nothing, so it just loses this backend (not its connection).
  bool died_between = false;

  bool between_transactions() const {
    if (c->mode == control::PoolMode::kSession || c->pinned || c->outstanding > 0 || c->unsynced ||
        !c->to_backend.empty() || b->tx_status != 'I')
      return false;
    return !c->session ||
           !(c->session->probe_wanted || c->session->probe_inflight || c->session->restore_wanted ||
             c->session->restore_inflight || c->session->ready_held);
  }

  bool probe_reply() const {
    const TrackEntry* head = c ? c->tracker.head() : nullptr;
    return head && head->reply == Reply::kProbe;
  }

  uint32_t prefix_wanted(char type, uint32_t length) {
    switch (type) {
      case pg::be::kReadyForQuery:
        return 1;
      case pg::be::kParameterStatus:
        return length - 4;  // small; we record it
      case pg::be::kErrorResponse:
        return 512;                   // severity, SQLSTATE, message
      case pg::be::kCommandComplete:  // "ROLLBACK" drops staged session changes
        return c && c->session && c->session->has_staged() ? std::min<uint32_t>(length - 4, 16) : 0;
      case pg::be::kDataRow:  // a row of the session-state probe's answer is read whole
        return probe_reply() ? length - 4 : 0;
      default:
        return 0;
    }
  }

  void on_parameter_status(std::string_view body, bool internal) {
    auto ps = pg::parse_parameter_status(body);
    if (!ps) return;
    std::string name(ps->name);
    bool found = false;
    for (auto& [k, v] : b->params)
      if (k == name) v = std::string(ps->value), found = true;
    if (!found) b->params.emplace_back(name, std::string(ps->value));
    // The client changed a reported parameter (SET): carry it to its next backend.
    if (c && !internal && is_tracked_parameter(lower(name))) {
      std::string value(ps->value);
      c->params = w.ctx_.params.with(c->params, lower(name), &value);
      b->synced_params = c->params;
      // Session mode follows a tenant named by SET application_name (applied after this
      // input is relayed).
      if (c->mode == control::PoolMode::kSession && lower(name) == w.tenant_parameter_)
        w.tenant_changes_.emplace_back(c, value);
    }
  }

  void on_message(const pg::FramedMessage& m) {
    std::string_view body(reinterpret_cast<const char*>(m.body()), m.captured());
    if (!c) {  // cleanup: the proxy's own queries; nothing reaches a client
      forward = false;
      if (m.type == pg::be::kReadyForQuery) {
        if (m.captured() >= 1) b->tx_status = char(m.body()[0]);
        if (b->swallow_rfq) --b->swallow_rfq;
      } else if (m.type == pg::be::kErrorResponse) {
        if (auto f = pg::parse_error_response(body); f) {
          if (f->is_fatal()) b->broken = true;
          log::warn("backend pid {}: cleanup query failed: {}: {}", b->process_id, f->sqlstate,
                    f->message);
        }
      } else if (m.type == pg::be::kParameterStatus && m.complete()) {
        on_parameter_status(body, true);
      }
      return;
    }
    // Asynchronous messages belong to no request.
    if (m.type == pg::be::kNoticeResponse || m.type == pg::be::kNotificationResponse ||
        m.type == pg::be::kParameterStatus) {
      const TrackEntry* head = c->tracker.head();
      // A notification is for the client's session whatever statement runs when it comes.
      // The restore of the client's startup values is the client's too (worker_restore.cpp).
      bool restoring = c->session && c->session->restore_inflight;
      bool internal =
          head && m.type != pg::be::kNotificationResponse &&
          ((head->reply == Reply::kSwallow && !restoring) || head->reply == Reply::kProbe);
      bool held = false;  // around a reset: the client gets the net changes (worker_restore.cpp)
      if (m.type == pg::be::kParameterStatus && m.complete()) {
        held = !internal && w.hold_parameter_status(c, b, body);
        on_parameter_status(body, internal);
      }
      forward = !internal && !held;
      if (forward) push_prefix(m);
      return;
    }
    // A FATAL the server sends on its own (terminated by an administrator, shutting down)
    // answers no request: the client gets it and the session ends with the connection.
    if (m.type == pg::be::kErrorResponse && c->tracker.empty()) {
      if (auto f = pg::parse_error_response(body); f && f->is_fatal()) {
        b->broken = true;
        if (between_transactions()) {
          died_between = true;
          forward = false;
          return;
        }
        forward = true;
        push_prefix(m);
        return;
      }
    }
    w.emit_synthetic(c);  // replies the proxy owes before this one
    // A Parse the server skipped after an error never created its statement there.
    auto skipped = [](void* ctx, const TrackEntry& e) {
      auto* backend = static_cast<pool::Backend*>(ctx);
      if (e.expect == Expect::kParse && e.stmt && !ResponseTracker::is_synthetic(e.reply))
        backend->statements.erase(e.stmt);
    };
    auto o = c->tracker.on_backend_message(w.track_pool_, m.type, skipped, b);
    // An injected extended-protocol message failed: the server now skips the client's messages
    // up to its Sync, so the client must see the error instead of a bare ReadyForQuery.
    // Injected messages the proxy ended with its own Sync (before a simple Query) need not.
    injected_failed = o.failed && !o.forward;
    if (o.failed && !o.forward && o.expect != Expect::kQuery && !injected_sync_next())
      o.forward = true;
    if (o.unexpected) {
      log::error(
          "backend pid {}: reply '{}' does not match the pending request; closing the "
          "session",
          b->process_id, m.type);
      desync = true;
    }
    forward = o.forward;
    if (o.probe) {  // the proxy's own question: read here, never forwarded
      if (m.type == pg::be::kReadyForQuery && m.captured() >= 1) {
        b->tx_status = char(m.body()[0]);
        lease_may_end = true;  // the answer is in: the backend may go now
      }
      if (!desync) w.on_probe_message(c, b, m.type, body, m.complete());
      return;
    }
    switch (m.type) {
      case pg::be::kReadyForQuery:
        if (m.captured() >= 1) b->tx_status = char(m.body()[0]);
        if (!forward && c->session && c->session->restore_inflight) {
          w.restore_done(c, b);
          lease_may_end = true;
        }
        if (forward) {
          if (c->outstanding > 0) --c->outstanding;
          c->last_activity = w.now_;
          if (c->session) w.settle_effects(c, b->tx_status);
          lease_may_end = true;
          if (c->tenant && c->query_started) {
            c->tenant->record_query(w.now_, w.now_ - c->query_started);
            c->query_started = c->outstanding > 0 ? w.now_ : 0;
          }
          if (b->tx_status == 'I' && c->outstanding == 0) {
            c->txn_started = 0;
            c->duration_cancelled = false;
          }
          // A reset puts the client's startup values back first, and the lease ends with a
          // session-state probe: this ReadyForQuery waits for them.
          if (w.hold_ready_for_restore(c, b) || w.hold_ready_for_probe(c, b)) forward = false;
        }
        break;
      case pg::be::kErrorResponse:
        if (o.forward && c->session) c->session->txn_failed = c->session->request_failed = true;
        if (auto f = pg::parse_error_response(body); f) on_error_response(*f, o, m);
        break;
      case pg::be::kCommandComplete:
        if (o.forward && c->session && body == std::string_view("ROLLBACK\0", 9))
          c->session->txn_failed = true;
        break;
      default:
        break;
    }
    if (forward) push_prefix(m);
  }

  bool injected_sync_next() const {
    const TrackEntry* h = c->tracker.head();
    return h && h->expect == Expect::kSync && h->reply == Reply::kSwallow;
  }

  void on_error_response(const pg::ErrorFields& f, const ResponseTracker::Outcome& o,
                         const pg::FramedMessage& m) {
    if (f.is_fatal()) b->broken = true;
    if (o.stmt) {
      // The statement is not (or no longer usable) on this backend: a failed Parse never
      // created it, and "cached plan must not change result type" after a schema change means
      // the server copy is stale. Forget it; the next use re-prepares it.
      if (o.expect == Expect::kParse ||
          f.message.find("cached plan must not change result type") != std::string::npos)
        b->statements.erase(o.stmt);
      // A Parse the client asked for failed (here, or deferred to this backend): its name must
      // not stay bound, or later Binds would report our name instead of the client's. Not when
      // the proxy's own Parse (re-preparing or deferred) met a transaction that had already
      // failed (25P02): on a direct connection the statement would still be prepared.
      if (o.expect == Expect::kParse && o.forward && c->session &&
          !(injected_failed && f.sqlstate == pg::sqlstate::kInFailedSqlTransaction))
        std::erase_if(c->session->statements,
                      [&](const auto& kv) { return kv.second->id == o.stmt; });
    }
    if (!o.forward)
      log::warn("backend pid {}: proxy-internal statement failed: {}: {}", b->process_id,
                f.sqlstate, f.message);
    // A statement we cancelled for max_transaction_duration: say why, not "user request".
    if (o.forward && c->duration_cancelled && m.complete() &&
        f.sqlstate == pg::sqlstate::kQueryCanceled) {
      std::string out;
      pg::write_error_response(
          out, "ERROR", pg::sqlstate::kQueryCanceled,
          "canceling statement: the transaction exceeded max_transaction_duration of " +
              std::to_string(c->tenant->max_transaction_duration() / kNanosPerMilli) +
              " ms for tenant \"" + std::string(c->tenant->name()) + "\"");
      c->to_client.push_owned(*w.chunks_, out);
      forward = false;
    }
  }

  void push_prefix(const pg::FramedMessage& m) {
    if (m.in_place && bid != kNoBuffer)
      c->to_client.push_borrowed(*w.chunks_, uint16_t(bid), data + m.offset, m.prefix_len);
    else if (m.in_place)
      c->to_client.push_owned(
          *w.chunks_,
          std::string_view(reinterpret_cast<const char*>(data + m.offset), m.prefix_len));
    else
      c->to_client.push_owned(
          *w.chunks_, std::string_view(reinterpret_cast<const char*>(m.prefix), m.prefix_len));
  }
  void on_body(uint32_t off, uint32_t n) {
    if (!forward || !c) return;
    if (bid != kNoBuffer)
      c->to_client.push_borrowed(*w.chunks_, uint16_t(bid), data + off, n);
    else
      c->to_client.push_owned(*w.chunks_,
                              std::string_view(reinterpret_cast<const char*>(data + off), n));
  }
  void on_message_end() {
    if (c) w.emit_synthetic(c);  // replies the proxy owes right after this one
  }
  void on_error(const char* what) {
    log::error("backend pid {}: unframeable data from the server: {}", b->process_id, what);
    b->broken = true;
  }
};

void Worker::arm_backend_recv(pool::Backend* b) {
  if (b->recv_armed || b->recv_paused) return;
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_recv(sqe, b->fd.get(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = bufs_->group_id();
  sqe->user_data = pack(Op::kBackendRecv, b->index, b->gen);
  b->recv_armed = true;
  ++b->inflight;
}

void Worker::on_backend_recv(pool::Backend* b, int res, uint32_t flags) {
  if (b->splice.joined && res != -EAGAIN && res != -ENOBUFS && res != -ECANCELED) {
    if (res > 0) b->splice.on_read(uint64_t(res));
    // Bytes (or the end of the stream) from a backend whose replies the kernel was carrying:
    // the kernel handed the lease back, ended it, or the server went away. Settle the lease
    // before they are handled. The recv still counts as in flight, so an ended lease's backend
    // is not released under our feet.
    if (b->state == pool::BackendState::kLeased && b->finish == pool::Backend::Finish::kNone)
      if (Client* owner = client_at(b->client_slot, b->client_gen);
          owner && owner->backend == b && owner->kernel && owner->kernel->lease)
        (void)settle_kernel_lease(owner);
  }
  b->recv_armed = false;
  --b->inflight;
  Client* c = nullptr;
  if (b->state == pool::BackendState::kLeased && b->finish == pool::Backend::Finish::kNone) {
    c = client_at(b->client_slot, b->client_gen);
    if (c && c->backend != b) c = nullptr;
  }
  if (res > 0) {
    uint16_t bid = uint16_t(flags >> IORING_CQE_BUFFER_SHIFT);
    bufs_->on_delivered(bid);
    stats_.bytes_from_backends.fetch_add(uint64_t(res), std::memory_order_relaxed);
    if (!c) b->forward_body = false;
    std::string first;  // the lease's first reply, when it came in pieces (lease_retry.h)
    if (c && c->retry.armed && !b->tls) {
      // The first reply of the lease: a backend terminated before it ran anything says so
      // first; then the transaction goes to another one. Anything else: it is answering.
      switch (take_first_reply(c, bufs_->data(bid), uint32_t(res), &first)) {
        case FirstReply::kPartial:  // an ErrorResponse begun: wait for the rest of it
          bufs_->unref(bid);
          arm_backend_recv(b);
          return;
        case FirstReply::kShutdown:
          if (retry_lease(c, b)) {
            bufs_->unref(bid);
            if (!c->retry.deferred) {
              b->finish = pool::Backend::Finish::kDiscard;
              finish_backend(b);
            }
            return;
          }
          break;
        case FirstReply::kAnswer:
          break;
      }
      c->retry.disarm();
    }
    BackendHandler h{*this, b, c, bid, bufs_->data(bid), b->forward_body};
    if (!first.empty()) {  // the pieces held, now relayed as a copy
      bufs_->unref(bid);
      h.bid = kNoBuffer;
      h.data = reinterpret_cast<const uint8_t*>(first.data());
      b->framer.feed(h.data, uint32_t(first.size()), h);
    } else if (b->tls) {  // decrypt; the plaintext is relayed as copies
      std::string plain;
      auto st = b->tls->feed(bufs_->data(bid), uint32_t(res), plain, *chunks_);
      bufs_->unref(bid);
      if (!st) {
        log::warn("backend pid {}: TLS: {}", b->process_id, st.error().message);
        b->broken = true;
      }
      h.bid = kNoBuffer;
      h.data = reinterpret_cast<const uint8_t*>(plain.data());
      if (!plain.empty()) b->framer.feed(h.data, uint32_t(plain.size()), h);
    } else {
      // After a kernel lease: first the rest of a message the kernel began, sent on raw.
      bool ready = false;
      uint32_t raw = resume_backend(b, c, bid, bufs_->data(bid), uint32_t(res), &ready);
      h.data = bufs_->data(bid) + raw;
      h.lease_may_end = ready;
      b->framer.feed(h.data, uint32_t(res) - raw, h);
      bufs_->unref(bid);
    }
    if (c) {
      flush_client(c);
      if (!tenant_changes_.empty()) {
        auto changes = std::move(tenant_changes_);
        tenant_changes_.clear();
        for (auto& [cl, name] : changes) follow_tenant(cl, name);
        if (c->state == ClientState::kClosing) return;
      }
      if (client_backlog(c) > kPauseBytes) b->recv_paused = true;
      update_client_input(c);
      if (h.died_between && !h.desync && c->tracker.empty() && c->outstanding == 0) {
        log::info("worker {}: backend pid {} of pool {} ended between transactions; replacing it",
                  id_, b->process_id, c->pool->name());
        end_lease(c);  // the broken backend is discarded, not released
        return;
      }
      if (b->broken || h.desync) {
        // The server said FATAL (e.g. terminated by an administrator), or the reply stream no
        // longer matches the requests: the client has what it was sent; the session is over.
        b->broken = true;
        c->backend = nullptr;
        ctx_.on_lease_end(c);
        if (h.desync && !c->fatal_sent)
          send_error(c, true, pg::sqlstate::kProtocolViolation,
                     "the proxy lost track of the server's replies; closing the session");
        c->fatal_sent = true;
        close_client(c);
        b->finish = pool::Backend::Finish::kDiscard;
        finish_backend(b);
        return;
      }
      if (h.lease_may_end) maybe_end_lease(c);
      // Draining, session mode: the session is between transactions; end it.
      if (stopping_ && h.lease_may_end && c->mode == control::PoolMode::kSession) drain_if_idle(c);
      // The replies the proxy had to see (its own SETs ahead of the client's statement) are in:
      // what is still owed may go through the kernel. If more of the reply already reached the
      // socket, the kernel refuses the splice (not caught up) and the relay goes on here.
      if (c->kernel && c->backend == b) maybe_splice(c, b);
      if (c->backend == b) arm_backend_recv(b);
      return;
    }
    on_backend_recv_unattached(b, /*had_data=*/true);
    return;
  }
  // ENOBUFS: out of receive buffers for a moment. EAGAIN: the socket is in the splice engine
  // and the verdict forwarded what woke the recv. Either way: try again.
  if (res == -ENOBUFS || res == -EAGAIN) {
    if (b->cancel_issued || b->finish != pool::Backend::Finish::kNone) {
      finish_backend(b);  // the lease is over: this was the recv being cancelled
      return;
    }
    arm_backend_recv(b);
    return;
  }
  if (res == -ECANCELED && b->cancel_issued) {
    finish_backend(b);
    return;
  }
  // EOF or error: the server closed the connection.
  if (c && c->retry.armed && retry_lease(c, b)) {
    if (!c->retry.deferred) {
      b->finish = pool::Backend::Finish::kDiscard;
      finish_backend(b);
    }
    return;
  }
  b->broken = true;
  if (c) {
    c->backend = nullptr;
    ctx_.on_lease_end(c);
    if (!c->fatal_sent)
      send_error(c, true, pg::sqlstate::kConnectionFailure,
                 "server closed the connection unexpectedly");
    else
      close_client(c);
  }
  b->finish = pool::Backend::Finish::kDiscard;
  finish_backend(b);
}

// Data (or its absence) on a backend no client is attached to: cleanup replies, or a backend
// being released that unexpectedly spoke.
void Worker::on_backend_recv_unattached(pool::Backend* b, bool had_data) {
  using F = pool::Backend::Finish;
  if (b->finish == F::kCleanup) {  // cleanup queries not sent yet: nothing to expect
    arm_backend_recv(b);
    return;
  }
  if (b->state == pool::BackendState::kCleanup && b->finish == F::kNone) {
    if (b->broken) {
      b->finish = F::kDiscard;
    } else if (b->swallow_rfq > 0) {
      arm_backend_recv(b);
      return;
    } else {
      b->finish = b->tx_status == 'I' ? F::kRelease : F::kDiscard;
    }
  }
  bool cleaning = b->state == pool::BackendState::kCleanup;
  if (b->finish == F::kNone || (had_data && !cleaning && b->finish == F::kRelease)) {
    b->broken = true;  // spoke while nobody asked: don't trust it with another client
    b->finish = F::kDiscard;
  }
  finish_backend(b);
}

}  // namespace helios::server
