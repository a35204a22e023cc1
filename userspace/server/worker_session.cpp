// Session state in transaction and statement pooling: what a client's statements do to its
// session, applied as they are relayed. Carried parameters follow the client to every backend;
// state that cannot be carried pins the lease (or, with pin_policy = "error", is refused).
#include "common/log.h"
#include "server/worker.h"

namespace helios::server {
namespace {

// Values recorded from a client's SET are replayed as written; a leading \x01 marks them
// (values learned from ParameterStatus are plain and replayed as literals).
std::string raw_value(std::string_view v) {
  return "\x01" + std::string(v);
}

void remove_name(std::vector<std::string>& names, const std::string& name) {
  if (name.empty()) {
    names.clear();
    return;
  }
  auto it = std::find(names.begin(), names.end(), name);
  if (it != names.end()) names.erase(it);
}

}  // namespace

bool Worker::apply_effects(Client* c, const std::vector<SessionEffect>& effects,
                           std::string* refusal) {
  using K = SessionEffect::Kind;
  pool::Backend* b = c->backend;
  auto session = [&]() -> ClientSession& {
    if (!c->session) c->session = std::make_unique<ClientSession>();
    return *c->session;
  };
  auto forget_backend_statements = [&] {
    if (b)
      b->statements.clear();
    else
      session().clear_backend_statements = true;
  };
  bool was_pinned = c->pinned;
  for (const auto& e : effects) {
    switch (e.kind) {
      case K::kBegin:
        break;
      case K::kSet:
        if (is_carried_parameter(e.name, cfg_->connection_pool.track_parameters)) {
          std::string v = raw_value(e.value);
          c->params = ctx_.params.with(c->params, e.name, &v);
          if (b) {  // the backend will hold it after this statement
            bool found = false;
            for (auto& [k, val] : b->params)
              if (lower(k) == e.name) val = v, found = true;
            if (!found) b->params.emplace_back(e.name, v);
            b->synced_params = c->params;
          }
          break;
        }
        [[fallthrough]];  // a parameter the proxy does not carry: pin
      case K::kPin: {
        PinReason reason = e.kind == K::kPin ? e.reason : PinReason::kUntrackedSet;
        if (cfg_->connection_pool.pin_policy == control::PinPolicy::kError) {
          *refusal = std::string(reason == PinReason::kUntrackedSet
                                     ? "SET of a parameter the proxy does not carry"
                                     : pin_reason_name(reason)) +
                     (e.name.empty() ? "" : " \"" + e.name + "\"") +
                     " would bind this client to one server connection, which transaction "
                     "pooling does not allow here (pin_policy = \"error\")";
          return false;
        }
        if (reason == PinReason::kAdvisoryLock)
          ++session().advisory_locks;
        else
          session().pins[size_t(reason)].push_back(e.name);
        ctx_.pins_total[size_t(reason)].fetch_add(1, std::memory_order_relaxed);
        break;
      }
      case K::kUnpin:
        if (!c->session) break;
        if (e.reason == PinReason::kAdvisoryLock) {
          c->session->advisory_locks =
              e.name.empty() ? 0 : std::max(0, c->session->advisory_locks - 1);
        } else if (e.reason < PinReason::kCount) {
          remove_name(c->session->pins[size_t(e.reason)], e.name);
        }
        break;
      case K::kReset: {
        const std::string* start = c->startup_params ? c->startup_params->find(e.name) : nullptr;
        c->params = ctx_.params.with(c->params, e.name, start);
        if (b) {
          std::erase_if(b->params, [&](const auto& kv) { return lower(kv.first) == e.name; });
          b->synced_params.reset();
        }
        if (c->session) remove_name(c->session->pins[size_t(PinReason::kUntrackedSet)], e.name);
        break;
      }
      case K::kResetAll:
      case K::kDiscardAll:
        c->params = c->startup_params;
        if (b) {
          b->params = c->pool->server_params_ref();
          b->synced_params.reset();
        }
        if (e.kind == K::kDiscardAll) {
          if (c->session) {
            c->session->statements.clear();
            for (auto& p : c->session->pins) p.clear();
            c->session->advisory_locks = 0;
          }
          forget_backend_statements();
        } else if (c->session) {
          c->session->pins[size_t(PinReason::kUntrackedSet)].clear();
        }
        break;
      case K::kDeallocateAll:
        if (c->session) {
          c->session->statements.clear();
          c->session->pins[size_t(PinReason::kSqlPrepare)].clear();
          c->session->pins[size_t(PinReason::kNamedStatement)].clear();
        }
        forget_backend_statements();
        break;
      case K::kDeallocate:
        break;  // SQL-level name: its pin is dropped by the matching kUnpin
    }
  }
  c->pinned = c->session && c->session->pinned();
  if (c->pinned != was_pinned)
    ctx_.pinned_clients.fetch_add(c->pinned ? 1 : -1, std::memory_order_relaxed);
  return true;
}

}  // namespace helios::server
