// Session state of a client in transaction/statement pooling that the proxy must carry or
// guard: its named prepared statements (and which ones queued messages need on whatever backend
// the next lease gets), and its pins — state bound to one backend's session (temp tables,
// advisory locks, WITH HOLD cursors, LISTEN, SQL PREPARE, untracked SET, named statements).
// Allocated on first use, so a client that never prepares or pins carries none of it.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "session/prepared_registry.h"
#include "session/session_probe.h"
#include "session/sql_inspect.h"

namespace helios::session {

struct ClientSession {
  std::unordered_map<std::string, PreparedPtr> statements;  // client name -> statement
  // Statements the queued (not yet leased) messages use: prepared by a queued Parse (parsed =
  // true, the backend will have it), or referenced by a queued Bind/Describe or by SQL EXECUTE /
  // DEALLOCATE (proxy/worker_statement_sql.cpp).
  struct Ref {
    PreparedPtr stmt;
    bool parsed;
    bool sync = false;     // a simple Query uses it: end the injected Parse with a Sync
    bool dropped = false;  // a queued SQL DEALLOCATE removes it from the backend
  };
  std::vector<Ref> pending;
  bool clear_backend_statements = false;  // a queued DEALLOCATE ALL / DISCARD ALL

  std::array<std::vector<std::string>, size_t(PinReason::kCount)> pins;  // names per reason
  int advisory_locks = 0;

  // Changes that PostgreSQL keeps only if their transaction commits (SET, RESET, unpins).
  struct Staged {
    uint32_t at_ready;  // the client's ReadyForQuery (Client::rfq_sent count) ending the statement
    SessionEffect effect;
  };
  std::deque<Staged> staged;          // statements not answered yet
  std::vector<SessionEffect> in_txn;  // answered, waiting for their transaction to end
  bool txn_failed = false;            // an error or ROLLBACK since the transaction began
  char last_status = 'I';             // transaction status of the last ReadyForQuery
  bool has_staged() const { return !staged.empty() || !in_txn.empty(); }

  // The session-state probe (session/session_probe.h, proxy/worker_probe.cpp).
  bool probe_wanted = false;    // statements since the last probe may have changed the session
  bool probe_inflight = false;  // sent; its answer is being read
  bool probe_failed = false;    // the answer was an error or a row the proxy cannot read
  bool ready_held = false;      // the client's ReadyForQuery waits for the answer
  SessionProbeAnswer probe;

  // The client's startup values put back after a reset (worker_restore.cpp).
  bool restore_wanted = false;    // a RESET / DISCARD ALL ran since
  bool restore_inflight = false;  // sent; the client's ReadyForQuery waits for it
  bool request_failed = false;    // an error answered the request now being answered
  // ParameterStatus held from a reset to the end of its restore: the client gets the net change
  // of each parameter, as a direct connection reports it (worker_restore.cpp).
  struct HeldStatus {
    std::string name, before, value;
  };
  std::vector<HeldStatus> held_status;
  bool hold_status = false;
  uint32_t restore_at = 0;  // the ReadyForQuery (Client::rfq_sent count) of the last reset

  bool pinned() const {
    if (advisory_locks > 0) return true;
    for (const auto& p : pins)
      if (!p.empty()) return true;
    return false;
  }
};

}  // namespace helios::session
