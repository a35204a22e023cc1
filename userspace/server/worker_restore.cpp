// Startup values after a reset. In PostgreSQL a client's startup parameters (options='-c ...'
// included) are its session's reset values: RESET x, RESET ALL, DISCARD ALL, SET x TO DEFAULT
// and SET TIME ZONE LOCAL return to them. A pooled backend's reset values are the proxy's own
// login values, so after such a statement succeeded the proxy puts the client's startup values
// back before the client's ReadyForQuery goes out: one swallowed query that sets each of them
// that the session no longer holds as a session value (pg_settings.source), in the client's
// transaction (so a ROLLBACK undoes it with the reset). The server's ParameterStatus messages
// for it reach the client, in the server's own format.
#include "pg/writer.h"
#include "server/worker.h"

namespace helios::server {

bool Worker::hold_ready_for_restore(Client* c, pool::Backend* b) {
  ClientSession* s = c->session.get();
  if (!s || !s->restore_wanted || c->mode == control::PoolMode::kSession) return false;
  // A failed transaction undoes the reset with everything else.
  if (b->tx_status == 'E') {
    s->restore_wanted = false;
    return false;
  }
  // Only when nothing else is owed or queued: the next RFQ tries again otherwise.
  if (c->outstanding > 0 || c->unsynced || !c->framer.at_boundary() || !c->to_backend.empty() ||
      !c->tracker.empty() || b->swallow_rfq > 0)
    return false;
  s->restore_wanted = false;
  std::string sql = startup_restore_sql(c->startup_params.get());
  if (sql.empty()) return false;
  s->restore_inflight = true;
  std::string out;
  pg::write_query(out, sql);
  c->tracker.push(track_pool_, Expect::kQuery, Reply::kSwallow);
  c->to_backend.push_owned(*chunks_, out);
  Nanos txn = c->txn_started, query = c->query_started;
  flush_backend(c);
  c->txn_started = txn;
  c->query_started = query;
  return true;
}

void Worker::restore_done(Client* c, pool::Backend* b) {
  ClientSession& s = *c->session;
  s.restore_inflight = false;
  forget_restored_values(c, b);
  // The lease may end with the session-state probe, which then releases the ReadyForQuery.
  if (hold_ready_for_probe(c, b)) return;
  std::string out;
  pg::write_ready_for_query(out, b->tx_status);
  c->to_client.push_owned(*chunks_, out);
}

void Worker::forget_restored_values(Client* c, pool::Backend* b) {
  if (!b || !c->startup_params) return;
  for (const auto& [name, value] : c->startup_params->pairs()) {
    if (!settable(lower(name))) continue;
    if (std::string* cur = find_param(b->params, name))
      *cur = kUnknownValue;
    else
      b->params.emplace_back(name, kUnknownValue);
  }
  b->synced_params.reset();
}

}  // namespace helios::server
