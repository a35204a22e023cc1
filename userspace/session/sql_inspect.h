// What a statement does to session state, read from its text (the first kilobyte or so that
// the relay captures). Transaction pooling moves a client between backends, so the proxy must
// know when a statement creates state that lives in one backend's session (a temp table, a
// session advisory lock, a WITH HOLD cursor, LISTEN, an SQL-level PREPARE, a SET of a parameter
// the proxy does not carry) or changes state it does carry (SET/RESET of tracked parameters,
// DEALLOCATE, DISCARD ALL). No I/O; pure text analysis, tested alone.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace helios::session {

enum class PinReason : uint8_t {
  kTempTable,
  kAdvisoryLock,
  kHoldCursor,
  kListen,
  kSqlPrepare,
  kUntrackedSet,
  kNamedStatement,  // prepared_statement_mode = "named": statements live on the backend
  kCount
};
const char* pin_reason_name(PinReason r);  // "temp_table", "advisory_lock", ...

// One effect of a statement on session state.
struct SessionEffect {
  enum class Kind : uint8_t {
    kPin,            // creates backend-bound state: pin (reason, name)
    kUnpin,          // releases it: (reason, name; name "" = all of that reason)
    kSet,            // SET name TO value (name lower-case, value as written, or from
                     // set_config(): configuration syntax marked with kConfigMark)
    kReset,          // RESET name
    kResetAll,       // RESET ALL
    kDeallocateAll,  // DEALLOCATE ALL
    kDeallocate,     // DEALLOCATE name
    kDiscardAll,     // DISCARD ALL: everything above at once
    kBegin,          // BEGIN / START TRANSACTION
  };
  Kind kind;
  PinReason reason = PinReason::kCount;
  std::string name;
  std::string value;
};

// The effects of the statements in `sql` (a simple Query's text, possibly several statements,
// possibly cut short). Statements whose effect cannot matter (SELECT without advisory locks,
// DML, SET LOCAL, ...) yield nothing. `complete` is false when `sql` was cut: a statement cut in
// the middle is analysed as far as it goes.
std::vector<SessionEffect> inspect_sql(std::string_view sql, bool complete);

// True if the statements in `sql` may change session state in a way their effects (above) do
// not show for certain: a SAVEPOINT, ROLLBACK TO, COMMIT/ROLLBACK AND CHAIN, DO, CALL, CREATE,
// DROP, SET TIME ZONE, a call of a function the inspector cannot see through (a user function may
// call set_config or create a temp table), anything naming pg_temp, a statement cut short, or any
// statement it does not know. Plain queries and DML calling only well-known built-in functions
// (pgbench's statements, SELECT now()) are not, and neither is a plain SET or RESET. When true,
// or when effects_need_probe(), the proxy asks the server for the session's state at the end of
// the lease (worker_probe.cpp).
bool may_change_session(std::string_view sql, bool complete);

// True unless every effect is one the proxy replays or undoes exactly from the text: BEGIN, and
// SET/RESET of carried parameters (`extras`: the configured track_parameters), RESET ALL. Pins
// and unpins are checked against the server (a multi-row lock call, a DROP of some other table).
bool effects_need_probe(const std::vector<SessionEffect>& effects,
                        const std::vector<std::string>& extras);

// True if the parameter (lower-case) is carried by the proxy from backend to backend: the
// reported ones plus search_path, statement_timeout, lock_timeout,
// idle_in_transaction_session_timeout, and the configured extras.
bool is_carried_parameter(std::string_view lower_name, const std::vector<std::string>& extras);

// True if the effect binds the session to its backend: a pin, or a SET of a parameter the proxy
// does not carry (with `extras` the configured track_parameters).
bool pins_session(const SessionEffect& e, const std::vector<std::string>& extras);

}  // namespace helios::session
