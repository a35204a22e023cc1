// The session-state probe in the worker: at the end of a lease whose statements may have
// changed session state, one query asks the backend what the session now holds, and the answer
// replaces the proxy's guess from the statements' text (session/session_probe.h).
//
// The backend stays leased until the answer is in, so no other client can get it before the
// proxy knows what it holds. The client's ReadyForQuery that ends the lease waits for the answer
// too (one round trip, for such leases only): a client that sends its next statement at once
// would otherwise have it run behind the probe on this backend before the answer is adopted,
// where nothing could replay what the answer says first (a RESET returns the backend to its own
// default, not to the client's startup value). A client that pipelines past the ReadyForQuery
// runs its next statements on the backend as its own session left it. A client that leaves
// before the answer gets its backend reset.
#include "common/log.h"
#include "pg/reader.h"
#include "pg/writer.h"
#include "proxy/worker.h"

namespace helios::proxy {
namespace {
// Server-side name of the prepared probe; the proxy's statements are hp_<number>.
constexpr std::string_view kProbeStatement = "hp_session_probe";
}  // namespace

bool Worker::hold_ready_for_probe(Client* c, pool::Backend* b) {
  session::ClientSession* s = c->session.get();
  if (!s || !s->probe_wanted || b->tx_status != 'I' || c->mode == config::PoolMode::kSession)
    return false;
  // Only the ReadyForQuery that ends the lease: nothing else owed or queued.
  if (!lease_quiet(c, b)) return false;
  s->ready_held = true;
  return true;
}

void Worker::send_session_probe(Client* c) {
  session::ClientSession& s = *c->session;
  s.probe_wanted = false;
  s.probe_inflight = true;
  s.probe_failed = false;
  s.probe = session::SessionProbeAnswer{};
  // Prepared once per backend (planning it was half its cost), then Bind/Execute/Sync; every
  // reply, an error included, belongs to the probe.
  pool::Backend* b = c->backend;
  std::string out;
  if (!b->probe_prepared) {  // Close first: harmless when absent, needed after a failed Bind
    pg::write_close(out, 'S', kProbeStatement);
    pg::write_parse(out, kProbeStatement, session::session_probe_sql());
    c->tracker.push(track_pool_, session::Expect::kClose, session::Reply::kProbe);
    c->tracker.push(track_pool_, session::Expect::kParse, session::Reply::kProbe);
    b->probe_prepared = true;
  }
  pg::write_bind(out, "", kProbeStatement);
  pg::write_execute(out, "");
  pg::write_sync(out);
  c->tracker.push(track_pool_, session::Expect::kBind, session::Reply::kProbe);
  c->tracker.push(track_pool_, session::Expect::kExecute, session::Reply::kProbe);
  c->tracker.push(track_pool_, session::Expect::kSync, session::Reply::kProbe);
  c->to_backend.push_owned(*chunks_, out);
  ctx_.session_probes.fetch_add(1, std::memory_order_relaxed);
  // Not the client's transaction or query: its timers stay as they are.
  Nanos txn = c->txn_started, query = c->query_started;
  flush_backend(c);
  c->txn_started = txn;
  c->query_started = query;
}

void Worker::on_probe_message(Client* c, pool::Backend* b, char type, std::string_view body,
                              bool complete) {
  session::ClientSession& s = *c->session;
  switch (type) {
    case pg::be::kDataRow: {
      bool read = false;
      if (complete)
        if (auto row = pg::parse_data_row(body); row) read = session::add_probe_row(s.probe, *row);
      if (!read) s.probe_failed = true;
      break;
    }
    case pg::be::kErrorResponse:
      s.probe_failed = true;
      b->probe_prepared = false;  // prepared again (Close, Parse) next time
      if (auto f = pg::parse_error_response(body); f) {
        if (f->is_fatal()) b->broken = true;
        log::warn("backend pid {}: session-state probe failed: {}: {}", b->process_id, f->sqlstate,
                  f->message);
      }
      break;
    case pg::be::kReadyForQuery:
      adopt_session_probe(c, b);
      break;
    default:  // CloseComplete, ParseComplete, BindComplete, CommandComplete
      break;
  }
}

void Worker::adopt_session_probe(Client* c, pool::Backend* b) {
  session::ClientSession& s = *c->session;
  s.probe_inflight = false;
  bool was_pinned = c->pinned;
  auto pin_list = [&](session::PinReason r) -> std::vector<std::string>& {
    return s.pins[size_t(r)];
  };
  // A pin the text did not show is counted when the answer reveals it.
  auto set_pins = [&](session::PinReason r, std::vector<std::string> names) {
    auto& list = pin_list(r);
    if (list.empty() && !names.empty())
      ctx_.pins_total[size_t(r)].fetch_add(1, std::memory_order_relaxed);
    list = std::move(names);
  };
  if (s.probe_failed) {
    // Nothing is proven about this session: it stays with this client.
    ctx_.session_probes_failed.fetch_add(1, std::memory_order_relaxed);
    auto& untracked = pin_list(session::PinReason::kUntrackedSet);
    if (std::find(untracked.begin(), untracked.end(), "session probe") == untracked.end()) {
      untracked.push_back("session probe");
      ctx_.pins_total[size_t(session::PinReason::kUntrackedSet)].fetch_add(
          1, std::memory_order_relaxed);
    }
  } else {
    const session::SessionProbeAnswer& a = s.probe;
    const auto& extras = cfg_->connection_pool.track_parameters;
    session::AdoptedSettings adopted =
        session::adopt_settings(a, c->startup_params.get(), c->params.get(), extras);
    c->params = ctx_.params.intern(std::move(adopted.params));

    // The backend's parameters as the server has them now, in the form sync_parameters()
    // compares: the client's own value where it carries one, the pool's default where the
    // session holds that, otherwise the configuration-syntax value.
    const pool::ParamList& defaults = c->pool->server_params_ref();
    auto session_value = [&](const session::SessionProbeAnswer::Setting& st) -> std::string {
      if (const std::string* mine = c->params->find(st.name);
          mine && *mine == session::config_value(st.value))
        return *mine;
      if (const std::string* def = session::find_param(defaults, st.name); def && *def == st.value)
        return *def;
      return session::config_value(st.value);
    };
    for (auto it = b->params.begin(); it != b->params.end();) {
      std::string name = session::lower(it->first);
      if (!session::settable(name) || session::probe_cannot_see(name)) {
        ++it;
        continue;
      }
      auto row = std::find_if(a.settings.begin(), a.settings.end(),
                              [&](const auto& st) { return st.name == name; });
      if (row != a.settings.end()) {
        it->second = session_value(*row);
        ++it;
      } else if (const std::string* def = session::find_param(defaults, name)) {
        it->second = *def;  // not set in the session: the backend has its default
        ++it;
      } else {
        it = b->params.erase(it);
      }
    }
    for (const auto& st : a.settings)
      if (session::settable(st.name) && !session::probe_cannot_see(st.name) &&
          !session::find_param(b->params, st.name))
        b->params.emplace_back(st.name, session_value(st));
    b->synced_params.reset();

    std::vector<std::string> untracked = std::move(adopted.untracked);
    for (const auto& n : pin_list(session::PinReason::kUntrackedSet))
      if (session::probe_cannot_see(n)) untracked.push_back(n);
    set_pins(session::PinReason::kUntrackedSet, std::move(untracked));
    if (a.advisory_locks > 0 && s.advisory_locks == 0)
      ctx_.pins_total[size_t(session::PinReason::kAdvisoryLock)].fetch_add(
          1, std::memory_order_relaxed);
    s.advisory_locks = int(a.advisory_locks);
    auto& temp = pin_list(session::PinReason::kTempTable);
    if (a.temp_objects == 0)
      temp.clear();
    else if (temp.empty())
      set_pins(session::PinReason::kTempTable, {"pg_temp"});
    set_pins(session::PinReason::kListen, a.listening);
    set_pins(session::PinReason::kSqlPrepare, a.sql_prepared);
    set_pins(session::PinReason::kHoldCursor, a.hold_cursors);
    if (cfg_->connection_pool.pin_policy == config::PinPolicy::kError && s.pinned() && !was_pinned)
      log::warn(
          "backend pid {}: a client's statements left state bound to the session that "
          "their text did not show; the client stays pinned despite pin_policy = \"error\"",
          b->process_id);
  }
  s.probe = session::SessionProbeAnswer{};
  if (s.ready_held) {
    s.ready_held = false;
    std::string out;
    pg::write_ready_for_query(out, b->tx_status);
    c->to_client.push_owned(*chunks_, out);
  }
  c->pinned = s.pinned();
  if (c->pinned != was_pinned)
    ctx_.pinned_clients.fetch_add(c->pinned ? 1 : -1, std::memory_order_relaxed);
}

}  // namespace helios::proxy
