// Client -> backend decisions (client_decoder.h). Messages are forwarded as they arrived unless
// a decision needs otherwise; decisions read a message's prefix only. In transaction and
// statement pooling the client's session is kept portable: named prepared statements are renamed
// to process-wide names and re-prepared wherever the client lands, statements that create
// backend-bound state pin the lease, and every reply is registered with the response tracker
// so replies to messages the proxy injected or answered itself are dropped or synthesized in
// their place.
#include "proxy/client_decoder.h"

#include "pg/protocol.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "pool/statement_cache.h"
#include "session/sql_lexer.h"

namespace helios::proxy {
namespace {

// True if a statement of the SQL text (a prefix of it is enough for its first statements)
// opens a transaction block: BEGIN or START TRANSACTION, found by the session layer's lexer, so
// comments, literals and later statements of a multi-statement Query count as PostgreSQL reads
// them.
bool starts_transaction(std::string_view sql) {
  session::SqlLexer lexer(sql);
  std::vector<session::SqlToken> tokens;
  size_t end = 0;
  while (lexer.next_statement(&tokens, &end)) {
    if (tokens.empty() || tokens[0].kind != session::SqlToken::Kind::kWord) continue;
    if (tokens[0].text == "begin" || tokens[0].text == "start") return true;
  }
  return false;
}

// Splits "name\0rest" at the first NUL; false if there is none.
bool split_cstring(std::string_view s, std::string_view* name, std::string_view* rest) {
  auto nul = s.find('\0');
  if (nul == std::string_view::npos) return false;
  *name = s.substr(0, nul);
  *rest = s.substr(nul + 1);
  return true;
}

std::string_view body_of(const pg::FramedMessage& m) {
  return {reinterpret_cast<const char*>(m.body()), m.captured()};
}

}  // namespace

DecodeResult ClientDecoder::feed(pg::StreamFramer& framer, const uint8_t* data, uint32_t len) {
  data_ = data;
  result_ = {};
  framer.feed(data, len, *this);
  return std::move(result_);
}

uint32_t ClientDecoder::prefix_wanted(char type, uint32_t length) const {
  uint32_t body = length - 4;
  switch (type) {
    case pg::fe::kQuery:
      return inspect_ ? std::min<uint32_t>(body, 4096) : 0;
    case pg::fe::kParse:
      return inspect_ ? std::min<uint32_t>(body, pg::kMaxPrefixBody) : 0;
    case pg::fe::kDescribe:  // the first byte says statement or portal: it sets the reply
      return std::min<uint32_t>(body, track_statements_ ? 1024 : 1);
    case pg::fe::kBind:
    case pg::fe::kClose:
      return track_statements_ ? std::min<uint32_t>(body, 1024) : 0;
    default:
      return 0;
  }
}

void ClientDecoder::forward_prefix(const pg::FramedMessage& m) {
  if (m.in_place)
    sink_.forward(data_ + m.offset, m.prefix_len, true);
  else
    sink_.forward(m.prefix, m.prefix_len, false);
}

void ClientDecoder::on_body(uint32_t off, uint32_t n) {
  if (wire_.forward_body) sink_.forward(data_ + off, n, true);
}

void ClientDecoder::on_message(const pg::FramedMessage& m) {
  bool& forward = wire_.forward_body;
  forward = true;
  if (wire_.skip_to_sync) {  // after a refused extended-protocol message: discard until Sync
    forward = false;
    if (m.type == pg::fe::kSync) {
      wire_.skip_to_sync = false;
      std::string out;
      pg::write_ready_for_query(out, 'I');
      sink_.answer(out);
    }
    return;
  }
  switch (m.type) {
    case pg::fe::kTerminate:
      result_.terminate = true;
      forward = false;
      return;
    case pg::fe::kQuery: {
      std::string_view sql = body_of(m);
      if (mode_ == config::PoolMode::kStatement && starts_transaction(sql)) {
        refuse_transaction(m);
        return;
      }
      std::string mapped;  // the text with the server's statement names (EXECUTE, DEALLOCATE)
      if (inspect_ && !map_statement_names(m, sql, &mapped)) return;
      if (inspect_ && !inspected(sql, m)) return;
      sink_.awaits_ready();
      ++result_.statements;
      wire_.unsynced = false;
      expect(session::Expect::kQuery);
      if (!mapped.empty()) {
        send_query(m, mapped);
        return;
      }
      break;
    }
    case pg::fe::kFunctionCall:
      if (inspect_) sink_.session().probe_wanted = true;  // a function the proxy cannot see into
      ++result_.statements;
      sink_.awaits_ready();
      wire_.unsynced = false;
      expect(session::Expect::kQuery);
      break;
    case pg::fe::kSync:
      wire_.unsynced = false;
      // A batch the proxy answered entirely (named Parses while no backend is held): no
      // server round trip at all.
      if (sink_.only_synthetic_owed()) {
        expect(session::Expect::kSync, session::Reply::kSynthReady);
        forward = false;
        return;
      }
      sink_.awaits_ready();
      expect(session::Expect::kSync);
      break;
    case pg::fe::kParse:
      wire_.unsynced = true;
      if (inspect_ && on_parse(m)) return;
      expect(session::Expect::kParse);
      break;
    case pg::fe::kBind:
      wire_.unsynced = true;
      if (track_statements_ && on_bind(m)) return;
      expect(session::Expect::kBind);
      break;
    case pg::fe::kExecute:
      ++result_.statements;
      wire_.unsynced = true;
      expect(session::Expect::kExecute);
      break;
    case pg::fe::kDescribe:
      wire_.unsynced = true;
      if (track_statements_ && on_describe(m)) return;
      if (m.captured() >= 1 && m.body()[0] == 'S')
        expect(session::Expect::kDescribeStmt);
      else
        expect(session::Expect::kDescribePortal);
      break;
    case pg::fe::kClose:
      wire_.unsynced = true;
      if (track_statements_ && on_close(m)) return;
      expect(session::Expect::kClose);
      break;
    default:  // Flush, CopyData, CopyDone, CopyFail: no reply of their own
      break;
  }
  forward_prefix(m);
}

// Before a message that uses `stmt`: leased -> re-prepare inline if needed; queued -> record.
void ClientDecoder::need_statement(const session::PreparedPtr& stmt) {
  if (sink_.leased()) {
    std::string out = sink_.prepare_on_backend(stmt);
    if (!out.empty()) sink_.send(out);
  } else {
    sink_.session().pending.push_back({stmt, false});
  }
}

// A statement's text: its session effects applied (false on a refusal, see effects()), and a
// session-state probe wanted at the lease's end if it may have changed more than they show.
bool ClientDecoder::inspected(std::string_view sql, const pg::FramedMessage& m) {
  auto fx = session::inspect_sql(sql, m.complete());
  if (!effects(fx, m)) return false;
  if (session::effects_need_probe(fx, cfg_.track_parameters) ||
      session::may_change_session(sql, m.complete()))
    sink_.session().probe_wanted = true;
  return true;
}

// Applies a statement's session effects; on a refusal the message is answered (or the client
// refused) and false is returned.
bool ClientDecoder::effects(const std::vector<session::SessionEffect>& fx,
                            const pg::FramedMessage& m) {
  if (fx.empty()) return true;
  std::string why;
  if (sink_.apply_effects(fx, &why)) return true;
  wire_.forward_body = false;
  if (!sink_.nothing_in_flight()) {
    result_.refusal = why;
    return false;
  }
  answer_error(m, pg::sqlstate::kFeatureNotSupported, why,
               "This proxy runs with pin_policy = \"error\": state that would bind the client to "
               "one server connection is refused.");
  return false;
}

// The proxy's own ErrorResponse to `m`, in order: a simple Query gets its ReadyForQuery, an
// extended-protocol message makes the rest of its batch be skipped up to the Sync.
void ClientDecoder::answer_error(const pg::FramedMessage& m, std::string_view sqlstate,
                                 std::string_view msg, std::string_view hint) {
  std::string out;
  pg::write_error_response(out, "ERROR", sqlstate, msg, {}, hint);
  if (m.type == pg::fe::kQuery)
    pg::write_ready_for_query(out, 'I');
  else
    wire_.skip_to_sync = true;
  sink_.answer(out);
}

// A simple Query naming the client's protocol-prepared statements (EXECUTE, DEALLOCATE): the
// text to send instead goes to `mapped`. False if the Query was answered or refused here.
bool ClientDecoder::map_statement_names(const pg::FramedMessage& m, std::string_view sql,
                                        std::string* mapped) {
  if (!track_statements_) return true;
  bool complete = m.complete();
  if (complete && !sql.empty() && sql.back() == '\0') sql.remove_suffix(1);
  bool quiet = sink_.nothing_in_flight() && !wire_.unsynced;
  switch (sink_.map_statement_sql(sql, complete, /*simple_query=*/true, quiet, mapped,
                                  &result_.refusal)) {
    case StatementSql::kAnswered:
    case StatementSql::kRefused:
      wire_.forward_body = false;
      mapped->clear();
      return false;
    case StatementSql::kRewritten:
    case StatementSql::kNone:
      break;
  }
  return true;
}

// The Query with its captured text replaced; the rest of a long body streams on unchanged.
void ClientDecoder::send_query(const pg::FramedMessage& m, std::string_view text) {
  std::string out;
  pg::MessageWriter mw(out);
  mw.begin(pg::fe::kQuery).put_bytes(text);
  if (m.complete()) mw.put_u8(0);
  mw.end(m.body_left);
  sink_.send(out);
}

// Parse: its text's session effects, and a named statement renamed to the shared server-side
// name. True if handled (not forwarded as is).
bool ClientDecoder::on_parse(const pg::FramedMessage& m) {
  std::string_view name, tail;
  if (!split_cstring(body_of(m), &name, &tail)) return false;
  std::string_view query, rest;
  if (split_cstring(tail, &query, &rest)) {
    if (mode_ == config::PoolMode::kStatement && starts_transaction(query)) {
      refuse_transaction(m);
      return true;
    }
    // A statement the proxy tracks (interned below) changes the session at each execution
    // (on_bind), not at its Parse.
    bool tracked = !name.empty() && track_statements_ && m.complete();
    if (!tracked && !inspected(query, m)) return true;
  }
  if (name.empty()) return on_unnamed_parse(m, tail);
  return on_named_parse(m, name, tail);
}

bool ClientDecoder::on_named_parse(const pg::FramedMessage& m, std::string_view name,
                                   std::string_view tail) {
  if (cfg_.prepared_statement_mode == config::PreparedStatementMode::kDisable) {
    wire_.forward_body = false;
    static constexpr std::string_view kMsg =
        "named prepared statements are disabled (prepared_statement_mode = \"disable\")";
    if (!sink_.nothing_in_flight()) {
      result_.refusal = kMsg;
      return true;
    }
    answer_error(m, pg::sqlstate::kFeatureNotSupported, kMsg, {});
    return true;
  }
  session::PreparedPtr stmt;
  if (track_statements_ && m.complete()) {
    auto& statements = sink_.session().statements;
    if (auto it = statements.find(std::string(name)); it != statements.end())
      return on_duplicate_parse(name, it->second, tail);
    stmt = sink_.intern(tail);
    if (!stmt) {
      // The texts held are at prepared_statement_memory_mb: not tracked after all, so its
      // text's session effects apply now, as for any untracked one.
      std::string_view query, rest;
      if (split_cstring(tail, &query, &rest) && !inspected(query, m)) return true;
    }
  }
  if (!stmt) {
    // "named" mode, a Parse too large to keep, or the texts held are at their limit: the
    // statement lives on this backend only.
    std::vector<session::SessionEffect> pin{{session::SessionEffect::Kind::kPin,
                                             session::PinReason::kNamedStatement, std::string(name),
                                             ""}};
    std::string why;
    if (!sink_.apply_effects(pin, &why)) {
      result_.refusal = why;
      wire_.forward_body = false;
      return true;
    }
    return false;
  }
  // pin_policy = "error" refuses a statement that would pin at its Parse, not at a later Bind.
  if (cfg_.pin_policy == config::PinPolicy::kError) {
    std::vector<session::SessionEffect> pins;
    for (const auto& e : stmt->effects)
      if (session::pins_session(e, cfg_.track_parameters)) pins.push_back(e);
    if (!effects(pins, m)) return true;
  }
  sink_.session().statements[std::string(name)] = stmt;
  wire_.forward_body = false;
  pool::StatementCache* held = sink_.backend_statements();
  if (!held) {
    // No backend held: answer the Parse now and prepare the statement on whatever backend
    // first needs it (so a client that prepares synchronously, like pgbench -M prepared, never
    // waits for a backend just to prepare). A statement the server rejects is reported at
    // that first use, in place of the message that needed it.
    expect(session::Expect::kParse, session::Reply::kSynthParse, stmt->id);
    return true;
  }
  if (held->contains(stmt->id)) {  // already there: answer ourselves
    held->touch(stmt->id);
    expect(session::Expect::kParse, session::Reply::kSynthParse, stmt->id);
    return true;
  }
  std::string out;
  pg::write_close(out, 'S', stmt->server_name);
  pg::write_parse_raw(out, stmt->server_name, stmt->tail);
  expect(session::Expect::kClose, session::Reply::kSwallow, stmt->id);
  expect(session::Expect::kParse, session::Reply::kForward, stmt->id);
  if (auto evicted = held->insert(stmt->id, size_t(cfg_.prepared_statement_cache_size))) {
    pg::write_close(out, 'S', session::server_statement_name(*evicted));
    expect(session::Expect::kClose, session::Reply::kSwallow);
  }
  sink_.send(out);
  return true;
}

// A Parse of a name the client prepared already: the server answers 42P05 (after checking the
// query, as directly) to a Parse under the existing statement's server name, which the backend
// is made to hold first; with no backend and nothing in flight, the proxy answers it.
bool ClientDecoder::on_duplicate_parse(std::string_view name, const session::PreparedPtr& existing,
                                       std::string_view tail) {
  wire_.forward_body = false;
  if (sink_.nothing_in_flight()) {
    std::string out;
    pg::write_error_response(out, "ERROR", pg::sqlstate::kDuplicatePreparedStatement,
                             "prepared statement \"" + std::string(name) + "\" already exists");
    wire_.skip_to_sync = true;
    sink_.answer(out);
    return true;
  }
  need_statement(existing);
  std::string out;
  pg::write_parse_raw(out, existing->server_name, tail);
  sink_.send(out);
  expect(session::Expect::kParse);  // no statement: its failure must not forget the existing one
  return true;
}

// Unnamed Parse: lives until the next Parse and passes through, unless its query is SQL
// naming the client's protocol-prepared statements (psycopg sends DEALLOCATE this way).
bool ClientDecoder::on_unnamed_parse(const pg::FramedMessage& m, std::string_view tail) {
  std::string_view query, rest;
  if (!track_statements_ || !m.complete() || !split_cstring(tail, &query, &rest)) return false;
  std::string mapped;
  switch (sink_.map_statement_sql(query, /*complete=*/true, /*simple_query=*/false,
                                  /*quiet=*/false, &mapped, &result_.refusal)) {
    case StatementSql::kNone:
    case StatementSql::kAnswered:  // not for a Parse
      return false;
    case StatementSql::kRefused:
      wire_.forward_body = false;
      return true;
    case StatementSql::kRewritten:
      break;
  }
  mapped += '\0';
  mapped += rest;
  std::string out;
  pg::write_parse_raw(out, "", mapped);
  sink_.send(out);
  expect(session::Expect::kParse);
  wire_.forward_body = false;
  return true;
}

// Bind of a named statement: same message with the server-side name.
bool ClientDecoder::on_bind(const pg::FramedMessage& m) {
  std::string_view portal, rest1, stmt_name, rest2;
  if (!split_cstring(body_of(m), &portal, &rest1) || !split_cstring(rest1, &stmt_name, &rest2))
    return false;
  session::ClientSession* s = sink_.session_if();
  if (stmt_name.empty() || !s) return false;
  auto it = s->statements.find(std::string(stmt_name));
  if (it == s->statements.end()) return false;  // unknown: the server says so
  session::PreparedPtr stmt = it->second;
  if (stmt->may_change_session || session::effects_need_probe(stmt->effects, cfg_.track_parameters))
    s->probe_wanted = true;
  // What the statement does to the session happens at every execution (a prepared SET or
  // pg_advisory_lock($1) run again).
  if (!stmt->effects.empty()) {
    std::string why;
    if (!sink_.apply_effects(stmt->effects, &why)) {
      result_.refusal = why;  // pin_policy changed since its Parse was accepted
      wire_.forward_body = false;
      return true;
    }
  }
  need_statement(stmt);
  std::string out;
  pg::MessageWriter mw(out);
  mw.begin(pg::fe::kBind).put_cstring(portal).put_cstring(stmt->server_name).put_bytes(rest2);
  mw.end(m.body_left);
  sink_.send(out);
  expect(session::Expect::kBind, session::Reply::kForward, stmt->id);
  // forward_body stays true: the rest of the body (parameter values) streams through unchanged.
  return true;
}

// The client's tracked statement a Describe or Close names ('S' + name), or none.
session::PreparedPtr ClientDecoder::named_statement(const pg::FramedMessage& m) {
  std::string_view body = body_of(m), name, rest;
  session::ClientSession* s = sink_.session_if();
  if (body.size() < 2 || body[0] != 'S' || !s) return nullptr;
  if (!split_cstring(body.substr(1), &name, &rest) || name.empty()) return nullptr;
  auto it = s->statements.find(std::string(name));
  return it == s->statements.end() ? nullptr : it->second;
}

bool ClientDecoder::on_describe(const pg::FramedMessage& m) {
  session::PreparedPtr stmt = named_statement(m);
  if (!stmt) return false;
  need_statement(stmt);
  std::string out;
  pg::write_describe(out, 'S', stmt->server_name);
  sink_.send(out);
  expect(session::Expect::kDescribeStmt, session::Reply::kForward, stmt->id);
  wire_.forward_body = false;
  return true;
}

// Close of a named statement: the server copy may be shared, so only the client's name goes;
// the proxy answers CloseComplete itself, in its place in the reply stream.
bool ClientDecoder::on_close(const pg::FramedMessage& m) {
  session::PreparedPtr stmt = named_statement(m);
  if (!stmt) return false;
  std::string_view name = body_of(m).substr(1);
  sink_.session_if()->statements.erase(std::string(name.substr(0, name.find('\0'))));
  expect(session::Expect::kClose, session::Reply::kSynthClose);
  wire_.forward_body = false;
  return true;
}

// Statement mode: a statement that opens a transaction block is answered by the proxy.
void ClientDecoder::refuse_transaction(const pg::FramedMessage& m) {
  wire_.forward_body = false;
  static constexpr std::string_view kMsg =
      "transaction blocks are not allowed in statement pooling mode";
  if (!sink_.nothing_in_flight() || wire_.unsynced) {
    // Answering locally would reorder replies: give up on this client.
    result_.refusal = kMsg;
    return;
  }
  answer_error(m, pg::sqlstate::kFeatureNotSupported, kMsg,
               "Use transaction or session pooling for this client, or run the statements "
               "without BEGIN.");
}

}  // namespace helios::proxy
