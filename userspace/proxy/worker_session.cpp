// Session state in transaction and statement pooling: what a client's statements do to its
// session. State that cannot be carried pins the lease at once (or, with pin_policy = "error",
// is refused). Changes PostgreSQL undoes when a transaction fails or rolls back (SET, RESET,
// dropping a temp table, closing a cursor, unlocking) are staged: they take effect for the proxy
// only when the ReadyForQuery that ends their transaction says it committed.
#include "common/log.h"
#include "proxy/worker.h"

namespace helios::proxy {
namespace {

// A client's SET is replayed as written; set_config() values (marked already) as they are.
std::string raw_value(std::string_view v) {
  return !v.empty() && v[0] == session::kConfigMark ? std::string(v) : session::sql_text_value(v);
}

void remove_name(std::vector<std::string>& names, const std::string& name) {
  if (name.empty()) {
    names.clear();
    return;
  }
  auto it = std::find(names.begin(), names.end(), name);
  if (it != names.end()) names.erase(it);
}

using K = session::SessionEffect::Kind;

// Effects that follow the transaction's fate (a SET of a parameter the proxy does not carry
// pins at once instead).
// DISCARD ALL cannot run in a transaction block: it is done when its ReadyForQuery says idle
// with no error since.
bool transactional(const session::SessionEffect& e, const std::vector<std::string>& extras) {
  return e.kind == K::kReset || e.kind == K::kResetAll || e.kind == K::kUnpin ||
         e.kind == K::kDiscardAll || (e.kind == K::kSet && !session::pins_session(e, extras));
}

// A reset: the client's startup values go back after it (worker_restore.cpp).
bool resets(const session::SessionEffect& e) {
  return e.kind == K::kReset || e.kind == K::kResetAll || e.kind == K::kDiscardAll;
}

}  // namespace

bool Worker::apply_effects(Client* c, const std::vector<session::SessionEffect>& effects,
                           std::string* refusal) {
  if (effects.empty()) return true;
  const auto& extras = cfg_->connection_pool.track_parameters;
  // pin_policy = "error": refuse the whole statement before any of it counts.
  if (cfg_->connection_pool.pin_policy == config::PinPolicy::kError) {
    for (const auto& e : effects) {
      if (!session::pins_session(e, extras)) continue;
      session::PinReason reason = e.kind == K::kPin ? e.reason : session::PinReason::kUntrackedSet;
      *refusal = std::string(reason == session::PinReason::kUntrackedSet
                                 ? "SET of a parameter the proxy does not carry"
                                 : session::pin_reason_name(reason)) +
                 (e.name.empty() ? "" : " \"" + e.name + "\"") +
                 " would bind this client to one server connection, which transaction "
                 "pooling does not allow here (pin_policy = \"error\")";
      return false;
    }
  }
  if (!c->session) c->session = std::make_unique<session::ClientSession>();
  session::ClientSession& s = *c->session;
  bool was_pinned = c->pinned;
  // The ReadyForQuery that ends the statement: a Query's own, or the next Sync's.
  uint32_t at_ready = c->rfq_sent + 1;
  for (const auto& e : effects) {
    if (resets(e) && c->startup_params && !c->startup_params->pairs().empty()) {
      s.restore_wanted = true;
      s.hold_status = true;
      s.restore_at = at_ready;
    }
    if (transactional(e, extras) || e.kind == K::kDeallocateAll) {
      s.staged.push_back({at_ready, e});
      continue;
    }
    switch (e.kind) {
      case K::kSet:  // a parameter the proxy does not carry
      case K::kPin: {
        session::PinReason reason =
            e.kind == K::kPin ? e.reason : session::PinReason::kUntrackedSet;
        if (reason == session::PinReason::kAdvisoryLock)
          ++s.advisory_locks;
        else
          s.pins[size_t(reason)].push_back(e.name);
        ctx_.pins_total[size_t(reason)].fetch_add(1, std::memory_order_relaxed);
        break;
      }
      default:  // kBegin, kDeallocate (its pin goes with the matching kUnpin)
        break;
    }
  }
  c->pinned = s.pinned();
  if (c->pinned != was_pinned)
    ctx_.pinned_clients.fetch_add(c->pinned ? 1 : -1, std::memory_order_relaxed);
  return true;
}

void Worker::settle_effects(Client* c, char tx_status) {
  session::ClientSession& s = *c->session;
  uint32_t answered = c->rfq_sent - c->outstanding;
  while (!s.staged.empty() && int32_t(s.staged.front().at_ready - answered) <= 0) {
    // DEALLOCATE ALL is not transactional: done unless its request met an error.
    if (s.staged.front().effect.kind == K::kDeallocateAll) {
      if (!s.request_failed) deallocate_all(c);
    } else {
      s.in_txn.push_back(std::move(s.staged.front().effect));
    }
    s.staged.pop_front();
  }
  // A failed request rolled its reset back (its transaction failed or ended in a rollback).
  if (s.request_failed && int32_t(s.restore_at - answered) <= 0) s.restore_wanted = false;
  s.request_failed = false;
  if (tx_status == 'T' && s.last_status == 'E') s.txn_failed = false;  // ROLLBACK TO SAVEPOINT
  s.last_status = tx_status;
  if (tx_status != 'I') return;
  bool commit = !s.txn_failed;
  s.txn_failed = false;
  if (s.in_txn.empty()) return;
  std::vector<session::SessionEffect> done;
  done.swap(s.in_txn);
  if (commit) commit_effects(c, done);
}

// Effects of a committed transaction: carried parameters change, pins are released.
void Worker::commit_effects(Client* c, const std::vector<session::SessionEffect>& effects) {
  session::ClientSession& s = *c->session;
  pool::Backend* b = c->backend;
  bool was_pinned = c->pinned;
  for (const auto& e : effects) {
    switch (e.kind) {
      case K::kSet: {
        std::string v = raw_value(e.value);
        c->params = ctx_.params.with(c->params, e.name, &v);
        if (b) {  // the backend holds it now
          if (std::string* cur = session::find_param(b->params, e.name))
            *cur = v;
          else
            b->params.emplace_back(e.name, v);
          b->synced_params = c->params;
        }
        break;
      }
      case K::kUnpin:
        if (e.reason == session::PinReason::kAdvisoryLock)
          s.advisory_locks = e.name.empty() ? 0 : std::max(0, s.advisory_locks - 1);
        else if (e.reason < session::PinReason::kCount)
          remove_name(s.pins[size_t(e.reason)], e.name);
        break;
      case K::kReset: {
        const std::string* start = c->startup_params ? c->startup_params->find(e.name) : nullptr;
        c->params = ctx_.params.with(c->params, e.name, start);
        if (b) {
          std::erase_if(b->params,
                        [&](const auto& kv) { return session::iequals(kv.first, e.name); });
          forget_restored_values(c, b);
        }
        remove_name(s.pins[size_t(session::PinReason::kUntrackedSet)], e.name);
        break;
      }
      case K::kResetAll:
        c->params = c->startup_params;
        if (b) {
          b->params = c->pool->server_params_ref();
          forget_restored_values(c, b);
        }
        s.pins[size_t(session::PinReason::kUntrackedSet)].clear();
        break;
      case K::kDiscardAll:  // RESET ALL, DEALLOCATE ALL, and every other session object gone
        c->params = c->startup_params;
        if (b) {
          b->params = c->pool->server_params_ref();
          forget_restored_values(c, b);
        }
        for (auto& p : s.pins) p.clear();
        s.advisory_locks = 0;
        deallocate_all(c);
        break;
      default:
        break;
    }
  }
  c->pinned = s.pinned();
  if (c->pinned != was_pinned)
    ctx_.pinned_clients.fetch_add(c->pinned ? 1 : -1, std::memory_order_relaxed);
}

// DEALLOCATE ALL (also by DISCARD ALL) took effect: the client's statements are gone, and so
// are the backend's (the proxy's hp_<id> statements included).
void Worker::deallocate_all(Client* c) {
  session::ClientSession& s = *c->session;
  pool::Backend* b = c->backend;
  s.statements.clear();
  s.pins[size_t(session::PinReason::kSqlPrepare)].clear();
  s.pins[size_t(session::PinReason::kNamedStatement)].clear();
  if (b) {
    b->statements.clear();
    b->probe_prepared = false;
  } else {
    s.clear_backend_statements = true;
  }
}

}  // namespace helios::proxy
