// Startup values after a reset. In PostgreSQL a client's startup parameters (options='-c ...'
// included) are its session's reset values: RESET x, RESET ALL, DISCARD ALL, SET x TO DEFAULT
// and SET TIME ZONE LOCAL return to them. A pooled backend's reset values are the proxy's own
// login values, so after such a statement succeeded the proxy puts the client's startup values
// back before the client's ReadyForQuery goes out: one swallowed query that sets each of them
// that the session no longer holds as a session value (pg_settings.source), in the client's
// transaction (so a ROLLBACK undoes it with the reset). The server's ParameterStatus messages
// for it reach the client, in the server's own format.
#include "pg/reader.h"
#include "pg/writer.h"
#include "proxy/worker.h"

namespace helios::proxy {

bool Worker::hold_ready_for_restore(Client* c, pool::Backend* b) {
  session::ClientSession* s = c->session.get();
  if (!s) return false;
  if (!s->restore_wanted || c->mode == config::PoolMode::kSession) {
    release_parameter_status(c);
    return false;
  }
  // A failed transaction undoes the reset with everything else.
  if (b->tx_status == 'E') {
    s->restore_wanted = false;
    release_parameter_status(c);
    return false;
  }
  // Only when nothing else is owed or queued: the next RFQ tries again otherwise.
  if (!lease_quiet(c, b)) {
    release_parameter_status(c);
    return false;
  }
  s->restore_wanted = false;
  std::string sql = session::startup_restore_sql(c->startup_params.get());
  if (sql.empty()) {
    release_parameter_status(c);
    return false;
  }
  s->restore_inflight = true;
  std::string out;
  pg::write_query(out, sql);
  c->tracker.push(track_pool_, session::Expect::kQuery, session::Reply::kSwallow);
  c->to_backend.push_owned(*chunks_, out);
  Nanos txn = c->txn_started, query = c->query_started;
  flush_backend(c);
  c->txn_started = txn;
  c->query_started = query;
  return true;
}

void Worker::restore_done(Client* c, pool::Backend* b) {
  session::ClientSession& s = *c->session;
  s.restore_inflight = false;
  forget_restored_values(c, b);
  release_parameter_status(c);
  // The lease may end with the session-state probe, which then releases the ReadyForQuery.
  if (hold_ready_for_probe(c, b)) return;
  std::string out;
  pg::write_ready_for_query(out, b->tx_status);
  c->to_client.push_owned(*chunks_, out);
}

void Worker::forget_restored_values(Client* c, pool::Backend* b) {
  if (!b || !c->startup_params) return;
  for (const auto& [name, value] : c->startup_params->pairs()) {
    if (!session::settable(session::lower(name))) continue;
    if (std::string* cur = session::find_param(b->params, name))
      *cur = session::kUnknownValue;
    else
      b->params.emplace_back(name, session::kUnknownValue);
  }
  b->synced_params.reset();
}

bool Worker::hold_parameter_status(Client* c, pool::Backend* b, std::string_view body) {
  session::ClientSession* s = c->session.get();
  if (!s || !s->hold_status) return false;
  auto ps = pg::parse_parameter_status(body);
  if (!ps) return false;
  for (auto& h : s->held_status)
    if (h.name == ps->name) {
      h.value = std::string(ps->value);
      return true;
    }
  // Before this change the client had been told what the backend reported last.
  const std::string* before = session::find_param(b->params, ps->name);
  s->held_status.push_back({std::string(ps->name),
                            before ? std::string(session::reported_value(*before)) : std::string(),
                            std::string(ps->value)});
  return true;
}

void Worker::release_parameter_status(Client* c) {
  session::ClientSession& s = *c->session;
  s.hold_status = false;
  if (s.held_status.empty()) return;
  std::string out;
  for (const auto& h : s.held_status)
    if (h.value != h.before) pg::write_parameter_status(out, h.name, h.value);
  s.held_status.clear();
  if (!out.empty()) c->to_client.push_owned(*chunks_, out);
}

}  // namespace helios::proxy
