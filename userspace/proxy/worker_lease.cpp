// Leases: getting a backend for a client, starting and ending the pairing, and returning the
// backend clean — rolled back and reset when its client leaves mid-transaction or ends a
// session, closed when that is not possible.
#include <sys/socket.h>

#include <algorithm>

#include "common/log.h"
#include "io/listener.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "pool/pool_manager.h"
#include "proxy/backend_route.h"
#include "proxy/worker.h"

namespace helios::proxy {

// Queues the SET/RESET statements that make the backend's session parameters what the client
// expects, in front of the client's queued messages; their replies are swallowed. Cheap when
// nothing differs (the common case: clients share interned parameter sets, and a backend
// remembers the set it was last synced to). Values a client SET are replayed as written
// (marked with a leading \x01); values the server reported are replayed as literals.
void Worker::sync_parameters(Client* c, pool::Backend* b) {
  if (b->synced_params == c->params && c->params) return;
  const pool::ParamList& defaults = c->pool->server_params_ref();
  std::string out;
  uint16_t n = 0;
  auto add = [&](const std::string& sql) {
    pg::write_query(out, sql);
    ++n;
  };
  if (c->params) {
    for (const auto& [name, value] : c->params->pairs()) {
      if (!session::settable(name)) continue;
      std::string* cur = session::find_param(b->params, name);
      if (cur && *cur == value) continue;
      add(session::set_parameter_sql(name, value));
      if (cur)
        *cur = value;
      else
        b->params.emplace_back(name, value);
    }
  }
  for (auto it = b->params.begin(); it != b->params.end();) {
    std::string name = session::lower(it->first);
    if ((c->params && c->params->find(name)) || !session::settable(name)) {
      ++it;
      continue;
    }
    const std::string* def = session::find_param(defaults, name);
    if (def) {
      if (*def != it->second) {
        add(session::set_parameter_sql(name, *def));
        it->second = *def;
      }
      ++it;
    } else {
      add("RESET " + session::quote_ident(name));
      it = b->params.erase(it);
    }
  }
  b->synced_params = c->params;
  if (n == 0) return;
  for (uint16_t i = 0; i < n; ++i)
    c->tracker.push_front(track_pool_, session::Expect::kQuery, session::Reply::kSwallow);
  c->to_backend.push_front_owned(*chunks_, out);
}

// Statements the queued messages use must exist on the backend the lease got.
void Worker::prepare_pending(Client* c, pool::Backend* b) {
  if (!c->session) return;
  session::ClientSession& s = *c->session;
  if (s.clear_backend_statements) {
    b->statements.clear();
    b->probe_prepared = false;
    s.clear_backend_statements = false;
  }
  if (s.pending.empty()) return;
  // In queue order: a statement a queued Parse creates needs nothing injected for the Binds
  // after it; any other referenced statement the backend lacks is re-prepared up front.
  std::vector<const session::ClientSession::Ref*> inject;
  std::vector<uint32_t> parsed;
  bool sync = false;
  for (const auto& ref : s.pending) {
    uint32_t id = ref.stmt->id;
    if (ref.parsed) {
      parsed.push_back(id);
    } else if (std::find(parsed.begin(), parsed.end(), id) == parsed.end() &&
               !b->statements.contains(id)) {
      inject.push_back(&ref);
      parsed.push_back(id);  // once is enough
      sync = sync || ref.sync;
    }
  }
  std::string out;
  if (sync && !inject.empty()) {  // a simple Query follows: an injected failure must not skip it
    pg::write_sync(out);
    c->tracker.push_front(track_pool_, session::Expect::kSync, session::Reply::kSwallow);
  }
  for (auto it = inject.rbegin(); it != inject.rend(); ++it) {  // entries go in front, reversed
    std::string one;
    ensure_prepared(c, b, (*it)->stmt, one, /*front=*/true);
    out.insert(0, one);
  }
  for (uint32_t id : parsed)
    b->statements.insert(id, size_t(cfg_->connection_pool.prepared_statement_cache_size));
  // A queued SQL DEALLOCATE removes the statement from the backend, unless a later queued Parse
  // creates it again.
  for (size_t i = 0; i < s.pending.size(); ++i) {
    if (!s.pending[i].dropped) continue;
    uint32_t id = s.pending[i].stmt->id;
    bool again = std::any_of(s.pending.begin() + long(i) + 1, s.pending.end(),
                             [&](const auto& r) { return r.parsed && r.stmt->id == id; });
    if (!again) b->statements.erase(id);
  }
  s.pending.clear();
  if (!out.empty()) c->to_backend.push_front_owned(*chunks_, out);
}

config::PoolMode Worker::lease_mode(const Client* c) const {
  if (c->tenant && ctx_.quotas_enabled.load(std::memory_order_relaxed)) {
    int8_t o = c->tenant->pool_mode_override();
    if (o >= 0) return config::PoolMode(o);
  }
  return c->pool->mode();
}

void Worker::need_backend(Client* c) {
  if (c->txn_lost) {  // its transaction died with its server: these statements are told so
    answer_lost_transaction(c);  // proxy/worker_backend_loss.cpp
    return;
  }
  Nanos now = monotonic_now();
  if (c->state == ClientState::kIdle || c->state == ClientState::kThrottled) {
    set_state(c, ClientState::kQueued, now);
    c->deadline = now + cfg_->connection_pool.acquire_timeout;
  }
  if (c->state != ClientState::kWelcome) {
    c->mode = lease_mode(c);
    // max_active: wait at the tenant's gate first (FIFO within the tenant).
    if (!c->active_held && c->tenant && ctx_.quotas_enabled.load(std::memory_order_relaxed)) {
      if (!ctx_.gates.enter(c->tenant, {id_, c->slot, c->gen})) {
        c->gate_waiting = true;
        return;
      }
      c->active_held = true;
    }
  }
  c->waiter.worker = id_;
  c->waiter.slot = c->slot;
  c->waiter.gen = c->gen;
  c->waiter.since = now;
  ctx_.fill_waiter(c);
  pool::Pool* target = route_lease(ctx_, *cfg_, c, now);  // proxy/backend_route.cpp
  if (!target) {
    if (c->state == ClientState::kQueued && cfg_->backend.failover_timeout > 0) {
      // No primary right now: polled from the tick (on_acquire_timeout) until one is found.
      c->awaiting_primary = true;
      if (!c->primary_deadline) c->primary_deadline = now + cfg_->backend.failover_timeout;
      c->deadline = now;
      return;
    }
    fail_pending(c, pg::sqlstate::kConnectionFailure, no_primary_message(ctx_));
    return;
  }
  if (pool::Backend* b = target->acquire(&c->waiter, now)) start_lease(c, b);
}

void Worker::on_grant(uint32_t slot, uint32_t gen, uint32_t backend_index) {
  pool::Backend* b = ctx_.backends.at(backend_index);
  Client* c = client_at(slot, gen);
  if (!c || (c->state != ClientState::kQueued && c->state != ClientState::kWelcome)) {
    // The client left (or timed out) while the grant was on its way: pass the backend on.
    b->pool->release(b, *this, monotonic_now());
    return;
  }
  start_lease(c, b);
}

void Worker::fail_pending(Client* c, std::string_view sqlstate, std::string_view message) {
  release_active(c);
  c->primary_deadline = 0;
  c->force_primary = false;
  bool clean = c->framer.at_boundary() && !c->wire.unsynced && c->outstanding > 0;
  if (!clean || c->state == ClientState::kWelcome) {
    send_error(c, true, sqlstate, message);
    return;
  }
  // Every statement that was waiting fails with the reason; the client can go on.
  c->to_backend.clear_if_idle(*chunks_);
  c->tracker.clear(track_pool_);
  if (c->session) {
    c->session->pending.clear();
    c->session->staged.clear();  // their statements never ran
  }
  std::string out;
  for (uint32_t i = 0; i < c->outstanding; ++i) {
    pg::write_error_response(out, "ERROR", sqlstate, message);
    pg::write_ready_for_query(out, 'I');
  }
  c->outstanding = 0;
  set_state(c, ClientState::kIdle, monotonic_now());
  queue_to_client(c, out);
  update_client_input(c);
}

void Worker::on_wait_failed(uint32_t slot, uint32_t gen, pool::WaitFailure why) {
  Client* c = client_at(slot, gen);
  if (!c || (c->state != ClientState::kQueued && c->state != ClientState::kWelcome)) return;
  (void)why;
  // PostgreSQL's own refusal (unknown database, no such role, too many connections...) goes
  // to the client as PostgreSQL said it; a network failure is reported as 08006.
  std::string sqlstate = waiting_pool(c)->last_connect_sqlstate();
  std::string error = waiting_pool(c)->last_connect_error();
  // The primary does not answer (stopped, crashed), or answers that it is going away or not
  // up yet (57P01-57P03: shutting down, starting up, in recovery): wait for one
  // (failover_timeout) rather than fail a client that may not be in a transaction at all.
  const bool going_away = sqlstate == pg::sqlstate::kAdminShutdown ||
                          sqlstate == pg::sqlstate::kCrashShutdown ||
                          sqlstate == pg::sqlstate::kCannotConnectNow;
  if ((sqlstate.empty() || going_away) && await_primary_after_failure(c)) return;
  if (!sqlstate.empty())
    fail_pending(c, sqlstate, error);
  else
    fail_pending(c, pg::sqlstate::kConnectionFailure,
                 "the proxy could not connect to the database for pool " + waiting_pool(c)->name() +
                     ": " + error);
}

// A client waiting for a primary (failover): acquire once one is known, fail at failover_timeout.
// Stays at the head of the queued list meanwhile (the tick polls it again).
void Worker::poll_primary_wait(Client* c) {
  Nanos now = monotonic_now();
  if (ctx_.hosts && ctx_.hosts->primary() >= 0) {
    c->awaiting_primary = false;
    c->deadline = now + cfg_->connection_pool.acquire_timeout;
    if (pool::Pool* target = route_lease(ctx_, *cfg_, c, now)) {
      if (pool::Backend* b = target->acquire(&c->waiter, now)) start_lease(c, b);
      return;
    }
  }
  if (now >= c->primary_deadline) {
    c->awaiting_primary = false;
    fail_pending(c, pg::sqlstate::kConnectionFailure,
                 no_primary_message(ctx_) + " within failover_timeout (" +
                     std::to_string(cfg_->backend.failover_timeout / kNanosPerMilli) + " ms)");
    return;
  }
  c->awaiting_primary = true;
}

void Worker::on_acquire_timeout(Client* c) {
  if (c->awaiting_primary) {
    poll_primary_wait(c);
    return;
  }
  std::string waited =
      std::to_string(cfg_->connection_pool.acquire_timeout / kNanosPerMilli) + " ms";
  std::string why;
  if (c->gate_waiting) {
    if (!ctx_.gates.cancel(c->tenant, {id_, c->slot, c->gen})) return;  // let through already
    c->gate_waiting = false;
    why = "tenant \"" + std::string(c->tenant->name()) + "\" already runs its max_active of " +
          std::to_string(c->tenant->max_active()) + " transactions; none ended within " + waited +
          " (acquire_timeout)";
    refuse_quota(c, tenant::Rejection::kMaxActive, why);
  } else {
    if (!waiting_pool(c)->cancel_wait(&c->waiter)) return;  // a grant is on its way
    auto s = waiting_pool(c)->settings();
    const pool::PoolSnapshot ps = waiting_pool(c)->snapshot();
    const std::string max = std::to_string(s.max_connections);
    std::string state;
    if (ps.total < s.max_connections && !ps.last_connect_error.empty()) {
      // Below its maximum the pool waited on PostgreSQL, not on other clients: say why (e.g.
      // "sorry, too many clients already" when PostgreSQL is full).
      state = std::to_string(ps.total) + " of " + max +
              " connections (max_connections) are open and opening another failed: " +
              ps.last_connect_error;
    } else if (ctx_.fleet) {  // the maximum is this instance's share of the fleet's
      const auto configured =
          pool::pool_settings_for(*cfg_, waiting_pool(c)->key().group).max_connections;
      state = "all " + max + " connections of this instance's share of the pool's fleet-wide " +
              "max_connections (" + std::to_string(configured) + ") are in use";
    } else {
      state = "all " + max + " connections (max_connections) are in use";
    }
    why = "no backend connection available in pool " + waiting_pool(c)->name() + " within " +
          waited + " (acquire_timeout): " + state;
    refuse_quota(c, tenant::Rejection::kAcquireTimeout, why);
  }
  fail_pending(c, pg::sqlstate::kTooManyConnections, why);
}

void Worker::start_lease(Client* c, pool::Backend* b) {
  if (!lease_host_ok(ctx_, c, b)) {  // the primary moved while it waited: never write there
    b->pool->release(b, *this, monotonic_now());
    if (await_primary(c)) return;  // for the next primary, up to failover_timeout
    fail_pending(c, pg::sqlstate::kConnectionFailure, no_primary_message(ctx_));
    return;
  }
  Nanos now = monotonic_now();
  b->worker = id_;
  b->client_slot = c->slot;
  b->client_gen = c->gen;
  b->lease_started = now;
  b->lease_seq.fetch_add(1, std::memory_order_relaxed);
  b->framer.reset();
  b->recv_paused = false;
  restore_user_timeout(b);  // it was idle in the pool: nothing of ours is unanswered
  b->finish = pool::Backend::Finish::kNone;
  b->cancel_issued = false;
  ctx_.on_lease_start(c, now - c->state_since);
  if (c->state == ClientState::kWelcome) {
    // We only needed a first backend to learn the server's parameters (it may come from another
    // host's pool: the client's own pool adopts them).
    if (b->pool != c->pool) c->pool->adopt_server_params(b->pool->server_params());
    send_welcome(c);
    b->lease_started = 0;
    ctx_.on_lease_end(c);
    b->pool->release(b, *this, now);
    return;
  }
  c->backend = b;
  c->primary_deadline = 0;
  c->ran_transaction = true;
  stats_.leases.fetch_add(1, std::memory_order_relaxed);
  set_state(c, ClientState::kActive, now);
  arm_lease_retry(c, b);
  prepare_pending(c, b);
  sync_parameters(c, b);
  path_->lease_started(c, b);
  arm_backend_recv(b);
  flush_backend(c);
}

void Worker::maybe_end_lease(Client* c) {
  pool::Backend* b = c->backend;
  if (!b || c->mode == config::PoolMode::kSession) return;
  if (!lease_quiet(c, b)) {
    return;
  }
  // The lease's statements may have changed session state: the server says what it is now
  // before the backend can go (or the client's pins be released); the answer calls back here.
  if (b->tx_status == 'I' && c->session && c->session->probe_wanted) {
    send_session_probe(c);
    return;
  }
  if (c->pinned) return;
  if (!transaction_ended(c, b->tx_status)) {
    if (c->mode == config::PoolMode::kStatement) {
      // A statement left a transaction open (e.g. "SELECT 1; BEGIN"): not allowed here.
      c->backend = nullptr;
      begin_cleanup(b, /*rollback=*/true, /*reset=*/false);
      send_error(c, true, pg::sqlstate::kFeatureNotSupported,
                 "transaction blocks are not allowed in statement pooling mode");
    }
    return;
  }
  end_lease(c);
}

void Worker::note_replies(Client* c, uint32_t answered, char tx_status) {
  if (answered == 0) return;
  c->last_activity = now_;
  if (c->tenant && c->query_started) {
    for (uint32_t i = 0; i < answered; ++i) c->tenant->record_query(now_, now_ - c->query_started);
    c->query_started = c->outstanding > 0 ? now_ : 0;
  }
  c->query_cancelled = false;  // what was cancelled is answered; the next statement is timed
  if (transaction_ended(c, tx_status)) {
    c->txn_started = 0;
    c->duration_cancelled = false;
  }
}

void Worker::end_lease(Client* c) {
  pool::Backend* b = c->backend;
  c->backend = nullptr;
  c->retry.disarm();
  c->force_primary = false;
  c->framer.release_scratch();
  ctx_.on_lease_end(c);
  note_lease_end(ctx_, *cfg_, c, monotonic_now());  // read-your-writes (backend_route.cpp)
  release_active(c);
  set_state(c, ClientState::kIdle, monotonic_now());
  b->finish = pool::Backend::Finish::kRelease;
  finish_backend(b);
}

void Worker::finish_backend(pool::Backend* b) {
  using F = pool::Backend::Finish;
  if (b->finish == F::kCleanup) {
    if (b->sends_inflight > 0) return;  // the client's last bytes must reach the server first
    std::string out;
    if (b->cleanup_rollback) {
      pg::write_query(out, "ROLLBACK");
      ++b->swallow_rfq;
    }
    std::string reset = b->cleanup_reset ? b->pool->reset_query() : std::string();
    if (!reset.empty()) {
      pg::write_query(out, reset);
      ++b->swallow_rfq;
      // DISCARD ALL (or whatever reset query) may drop statements and parameters: assume it
      // did, so the next lease re-prepares and re-syncs what it needs.
      b->statements.clear();
      b->probe_prepared = false;
      b->params = b->pool->server_params_ref();
      b->synced_params.reset();
    }
    if (out.empty()) {
      b->finish = F::kRelease;  // nothing to run: return it as it is
    } else {
      // Replies are read by on_backend_recv_unattached, which releases the backend after the
      // last one.
      b->finish = F::kNone;
      if (b->tls) {
        if (auto st = b->tls->write(out, *chunks_); !st) b->broken = true;
        submit_send(b->tls->out(), b->fd.get(), pack(Op::kControlSend, b->index, b->gen));
      } else {
        b->control_out = std::move(out);
        io_uring_sqe* sqe = ring_->sqe();
        io_uring_prep_send(sqe, b->fd.get(), b->control_out.data(), b->control_out.size(),
                           MSG_NOSIGNAL);
        sqe->user_data = pack(Op::kControlSend, b->index, b->gen);
      }
      ++b->inflight;
      ++b->sends_inflight;
      arm_backend_recv(b);
      return;
    }
  }
  if (b->recv_armed && !b->cancel_issued) {
    io_uring_sqe* sqe = ring_->sqe();
    io_uring_prep_cancel64(sqe, pack(Op::kBackendRecv, b->index, b->gen), 0);
    sqe->user_data = pack(Op::kCancelOp, b->index, b->gen);
    b->cancel_issued = true;
  }
  if (b->inflight > 0) return;  // called again as the last operation completes
  auto action = b->finish;
  b->finish = F::kNone;
  b->control_out.clear();
  if (action == F::kRelease && !b->broken) {
    b->pool->release(b, *this, monotonic_now());
  } else {
    b->pool->discard(b, *this);
  }
}

void Worker::on_control_send(pool::Backend* b, int res) {
  --b->inflight;
  --b->sends_inflight;
  if (b->tls) {
    complete_send(b->tls->out(), res);
    if (res < 0)
      b->broken = true;
    else if (!b->tls->out().empty())  // a partial send: the rest goes next
      submit_send(b->tls->out(), b->fd.get(), pack(Op::kControlSend, b->index, b->gen)),
          ++b->inflight, ++b->sends_inflight;
    if (b->broken) {
      b->finish = pool::Backend::Finish::kDiscard;
      ::shutdown(b->fd.get(), SHUT_RDWR);
    }
    if (b->finish != pool::Backend::Finish::kNone) finish_backend(b);
    return;
  }
  if (res < 0 || size_t(res) < b->control_out.size()) {
    b->broken = true;
    b->finish = pool::Backend::Finish::kDiscard;
    ::shutdown(b->fd.get(), SHUT_RDWR);
  }
  if (b->finish != pool::Backend::Finish::kNone) finish_backend(b);
}

void Worker::begin_cleanup(pool::Backend* b, bool rollback, bool reset) {
  if (!b->move_to(pool::BackendState::kCleanup))
    ctx_.metrics.count_refused_transition(Machine::kBackend);
  b->cleanup_rollback = rollback;
  b->cleanup_reset = reset;
  b->finish = pool::Backend::Finish::kCleanup;
  finish_backend(b);
}

void Worker::detach_backend_on_close(Client* c) {
  pool::Backend* b = c->backend;
  if (!b) return;
  c->backend = nullptr;
  ctx_.on_lease_end(c);
  // Only the session-state probe's answer is owed: it is read and dropped with the reset's.
  session::ClientSession* s = c->session.get();
  if (s && s->probe_inflight && c->tracker.only_probe() && c->to_backend.empty()) {
    c->tracker.clear(track_pool_);
    ++b->swallow_rfq;
    s->probe_inflight = false;
    s->probe_wanted = true;
  }
  bool quiet = c->outstanding == 0 && !c->wire.unsynced && c->framer.at_boundary() &&
               c->tracker.empty() && b->swallow_rfq == 0 && !b->broken;
  bool probe_owed = b->swallow_rfq == 1 && s && s->probe_wanted && c->tracker.empty() &&
                    c->outstanding == 0 && !c->wire.unsynced && c->framer.at_boundary() &&
                    !b->broken;
  bool session = c->mode == config::PoolMode::kSession;
  if (!quiet && !probe_owed) {
    // A statement is still running or a message was cut: we cannot know the session's state.
    b->broken = true;
    b->finish = pool::Backend::Finish::kDiscard;
    ::shutdown(b->fd.get(), SHUT_RDWR);
    finish_backend(b);
    return;
  }
  // A pinned client leaves state in the session (temp tables, locks, cursors, LISTEN, SETs the
  // proxy does not carry) that no other client may inherit: reset it like a session client's.
  // So does a client whose last statements may have changed session state that no probe has
  // confirmed since: nothing proves the session clean.
  bool unproven = s && s->probe_wanted;
  bool reset = session || c->pinned || unproven;
  if (b->tx_status == 'I' && !reset) {
    b->finish = pool::Backend::Finish::kRelease;
    finish_backend(b);
    return;
  }
  if ((c->pinned || unproven) && b->pool->reset_query().empty()) {  // nothing to reset with
    b->finish = pool::Backend::Finish::kDiscard;
    finish_backend(b);
    return;
  }
  begin_cleanup(b, b->tx_status != 'I', reset);
}

void Worker::on_cancel(uint32_t slot, uint32_t key) {
  if (slot >= slots_used_) return;
  Client* c = &client_chunks_[slot / kClientChunkSize][slot % kClientChunkSize];
  if (c->state == ClientState::kFree || c->cancel_key != key) return;
  if (c->state == ClientState::kQueued) {
    if (c->gate_waiting) {
      if (!ctx_.gates.cancel(c->tenant, {id_, c->slot, c->gen})) return;
      c->gate_waiting = false;
    } else if (!c->awaiting_primary && !waiting_pool(c)->cancel_wait(&c->waiter)) {
      return;
    }
    c->awaiting_primary = false;
    fail_pending(c, pg::sqlstate::kQueryCanceled, "canceling statement due to user request");
    return;
  }
  pool::Backend* b = c->backend;
  if (c->state != ClientState::kActive || !b) return;  // nothing running: a late cancel is a no-op
  cancel_backend_query(b);
}

void Worker::begin_drain(Nanos deadline) {
  if (stopping_) return;
  accepting_ = false;
  stopping_ = true;
  drain_deadline_ = deadline;
  if (accept_armed_) {
    io_uring_sqe* sqe = ring_->sqe();
    io_uring_prep_cancel64(sqe, pack(Op::kAccept, 0, 0), 0);
    sqe->user_data = pack(Op::kCancelOp, 0, 0);
  }
  // Connections already queued on this listener would be reset when it closes: take them in
  // (they get to run), then leave the SO_REUSEPORT group so new ones go to a successor.
  for (;;) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break;
    io::tune_stream_socket(fd);
    if (!new_client(fd)) ::close(fd);
  }
  ::shutdown(listener_.get(), SHUT_RD);
  path_
      ->take_back_all();  // leases in the kernel come back so the drain sees their transactions end
  // Clients idle for a while are told now; a client that just logged in (or is still logging
  // in) may run its transaction first. Busy ones are closed when their transaction ends.
  Nanos now = monotonic_now();
  for (auto& chunk : client_chunks_)
    for (uint32_t i = 0; i < kClientChunkSize; ++i) {
      Client* c = &chunk[i];
      if ((c->state == ClientState::kIdle || c->state == ClientState::kThrottled) &&
          c->ran_transaction && now - c->state_since > kDrainIdleGrace)
        send_error(c, true, pg::sqlstate::kAdminShutdown, "the proxy is shutting down");
    }
}

// During a drain: a client that is between transactions has nothing more to finish here.
void Worker::drain_if_idle(Client* c) {
  if (!stopping_ || c->state == ClientState::kClosing || c->state == ClientState::kFree) return;
  bool idle = c->state == ClientState::kIdle ||
              (c->state == ClientState::kActive && c->mode == config::PoolMode::kSession &&
               c->backend && c->backend->tx_status == 'I' && c->outstanding == 0 &&
               c->tracker.empty() && c->to_backend.empty() && c->framer.at_boundary());
  if (idle) send_error(c, true, pg::sqlstate::kAdminShutdown, "the proxy is shutting down");
}

// The drain deadline passed: cancel what still runs on servers, then close every client.
void Worker::drain_deadline_passed() {
  for (auto& chunk : client_chunks_)
    for (uint32_t i = 0; i < kClientChunkSize; ++i) {
      Client* c = &chunk[i];
      if (c->state == ClientState::kFree || c->state == ClientState::kClosing) continue;
      if (pool::Backend* b = c->backend; b && (c->outstanding > 0 || b->tx_status != 'I'))
        cancel_backend_query(b);
      send_error(c, true, pg::sqlstate::kAdminShutdown,
                 "the proxy is shutting down (drain_timeout passed)");
    }
}

void Worker::cancel_backend_query(pool::Backend* b) {
  uint64_t seq = b->lease_seq.load(std::memory_order_relaxed);
  int32_t pid = b->process_id, secret = b->secret_key;
  uint32_t index = b->index;
  auto* table = &ctx_.backends;
  const uint16_t host = b->pool->key().host;  // the cancel goes to the backend's own host
  ctx_.connector->run([this, table, index, seq, pid, secret, host](pool::Messenger&) {
    pool::Backend* bb = table->at(index);
    // The lease may have ended while this job waited: then the cancel must not hit whatever
    // runs on that backend now.
    if (!bb || bb->lease_seq.load(std::memory_order_relaxed) != seq) return;
    const pool::ConnectorSettings s = ctx_.connector->settings();
    const pool::ServerAddress& addr = host < s.hosts.size() ? s.hosts[host] : s.address;
    auto st = pool::pg_cancel(addr, pid, secret, monotonic_now() + 5 * kNanosPerSec);
    if (!st) log::warn("cancel for backend pid {} failed: {}", pid, st.error().message);
  });
}

}  // namespace helios::proxy
