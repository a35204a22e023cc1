// SQL DEALLOCATE and EXECUTE of statements the client prepared with the protocol (Parse). In
// prepared_statement_mode = "track" those statements live on backends under the proxy's names
// (hp_<n>), so SQL naming them by the client's name would reach a server that does not know it
// (26000, and inside a transaction the transaction aborts). The proxy maps the names:
//
// - EXECUTE name: rewritten to the server's name, after making sure the backend holds it.
// - DEALLOCATE name: the client's name is forgotten at once (prepared statements are not
//   transactional). With no backend held and nothing else pending, a Query made only of such
//   DEALLOCATEs is answered by the proxy ("DEALLOCATE" per statement, ReadyForQuery 'I') and the
//   backends keep their copy. Otherwise the statement is rewritten to DEALLOCATE of the server's
//   name, so the server answers it in its place among the other replies; that backend then no
//   longer holds the statement and re-prepares it when next needed.
// - DEALLOCATE of a name the client never prepared this way, and EXECUTE of an SQL-prepared
//   statement, go to the server unchanged: it answers as it would directly.
//
// Where the backend lacks a statement, Close+Parse are injected before the message (replies
// swallowed); before a simple Query a Sync follows them, so an injected Parse that fails (in a
// transaction that an earlier statement of the same pipeline aborted) does not make the server
// skip the client's Query. In a transaction known to have failed, nothing is mapped: the server
// refuses the statement as it would directly, and the client keeps the name, as it does there.
#include <unordered_set>

#include "pg/writer.h"
#include "proxy/worker.h"
#include "session/sql_statement_names.h"

namespace helios::proxy {
namespace {

bool mentions(std::string_view sql, std::string_view lower_word) {
  if (sql.size() < lower_word.size()) return false;
  for (size_t i = 0; i + lower_word.size() <= sql.size(); ++i) {
    size_t k = 0;
    while (k < lower_word.size()) {
      char ch = sql[i + k];
      if (ch >= 'A' && ch <= 'Z') ch = char(ch - 'A' + 'a');
      if (ch != lower_word[k]) break;
      ++k;
    }
    if (k == lower_word.size()) return true;
  }
  return false;
}

}  // namespace

StatementSql Worker::map_statement_sql(Client* c, std::string_view sql, bool complete,
                                       bool simple_query, bool quiet, std::string* rewritten,
                                       std::string* refusal) {
  using K = session::StatementNameUse::Kind;
  if (!c->track_statements || !c->session || c->session->statements.empty())
    return StatementSql::kNone;
  if (!mentions(sql, "deallocate") && !mentions(sql, "execute")) return StatementSql::kNone;
  // In a transaction that already failed, the server refuses every statement (25P02) whatever
  // it names, and a refused DEALLOCATE leaves the statement prepared: pass it on as it is.
  if (c->backend && c->backend->tx_status == 'E' && c->tracker.empty()) return StatementSql::kNone;
  session::ClientSession& s = *c->session;

  struct Mapped {
    session::PreparedPtr stmt;
    bool deallocate;
    std::string client_name;
  };
  std::vector<Mapped> mapped;
  std::vector<session::TextReplacement> replacements;
  std::unordered_set<std::string> gone;  // deallocated earlier in this text
  bool only_deallocates = true;
  for (auto& u : session::statement_name_uses(sql, complete)) {
    if (u.kind == K::kDeallocateAll) {  // forgets everything (apply_effects): nothing to map after
      only_deallocates = false;
      break;
    }
    if ((u.kind == K::kDeallocate || u.kind == K::kExecute) && !gone.contains(u.name)) {
      if (auto it = s.statements.find(u.name); it != s.statements.end()) {
        bool dealloc = u.kind == K::kDeallocate;
        replacements.push_back({u.name_pos, u.name_len, it->second->server_name});
        mapped.push_back({it->second, dealloc, std::move(u.name)});
        if (dealloc)
          gone.insert(mapped.back().client_name);
        else
          only_deallocates = false;
        continue;
      }
    }
    only_deallocates = false;  // a statement for the server
  }
  if (mapped.empty()) return StatementSql::kNone;

  // What an executed statement does to the session happens at each execution (as for a Bind).
  for (const auto& m : mapped)
    if (!m.deallocate && !m.stmt->effects.empty() && !apply_effects(c, m.stmt->effects, refusal))
      return StatementSql::kRefused;
  for (const auto& m : mapped)
    if (m.deallocate) s.statements.erase(m.client_name);

  if (simple_query && quiet && only_deallocates) {
    std::string out;
    for (size_t i = 0; i < mapped.size(); ++i) pg::write_command_complete(out, "DEALLOCATE");
    pg::write_ready_for_query(out, 'I');
    queue_to_client(c, out);
    return StatementSql::kAnswered;
  }

  if (pool::Backend* b = c->backend) {
    std::string out;
    for (const auto& m : mapped) ensure_prepared(c, b, m.stmt, out, /*front=*/false);
    for (const auto& m : mapped)
      if (m.deallocate) b->statements.erase(m.stmt->id);
    if (!out.empty()) {
      // Outside an extended-protocol batch: end the injected messages with their own Sync.
      if (simple_query && !c->wire.unsynced) {
        pg::write_sync(out);
        c->tracker.push(track_pool_, session::Expect::kSync, session::Reply::kSwallow);
      }
      c->to_backend.push_owned(*chunks_, out);
    }
  } else {
    for (const auto& m : mapped)
      s.pending.push_back({m.stmt, /*parsed=*/false, /*sync=*/simple_query, m.deallocate});
  }
  *rewritten = session::replace_spans(sql, replacements);
  return StatementSql::kRewritten;
}

}  // namespace helios::proxy
