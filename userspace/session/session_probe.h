// The session-state probe: one query the proxy runs on a backend at the end of a lease whose
// statements may have changed session state in ways their text cannot show for certain
// (savepoints, AND CHAIN, functions calling set_config, DO blocks, multi-row lock calls,
// schema-qualified temp objects). PostgreSQL's answer is the truth the proxy adopts: parameters
// set in the session are carried, state that cannot move pins, state the client no longer holds
// is forgotten. No I/O here: the SQL, the parsing of its rows, and the adoption rules, tested
// alone (the worker sends it and applies the result in worker_probe.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "session/params.h"

namespace helios::session {

// Rows of (kind, name, value, reset_val), in one round trip.
std::string_view session_probe_sql();

struct SessionProbeAnswer {
  struct Setting {
    std::string name;   // lower-case
    std::string value;  // pg_settings.setting (configuration syntax, base units)
    std::string reset;  // pg_settings.reset_val: what the backend has without the session's SET
  };
  std::vector<Setting> settings;          // pg_settings WHERE source = 'session'
  int64_t advisory_locks = 0;             // session advisory locks the backend holds
  int64_t temp_objects = 0;               // relations and functions in pg_my_temp_schema()
  std::vector<std::string> listening;     // pg_listening_channels()
  std::vector<std::string> sql_prepared;  // pg_prepared_statements WHERE from_sql
  std::vector<std::string> hold_cursors;  // pg_cursors WHERE is_holdable
};

// Adds one DataRow of the probe's answer; false if the row is not one the probe makes.
bool add_probe_row(SessionProbeAnswer& a, const std::vector<std::optional<std::string_view>>& row);

// True if pg_settings may not list a parameter the client set (custom placeholders such as
// myapp.tenant are hidden, and so are role and session_authorization): for those the proxy keeps
// what it learned from the statements' text.
bool probe_cannot_see(std::string_view lower_name);

struct AdoptedSettings {
  ParamPairs params;                   // the client's carried parameters from now on
  std::vector<std::string> untracked;  // set in the session, not carried: they pin the client
};

// The client's parameters after the answer: its startup parameters (what RESET returns to), the
// values of carried parameters the session holds (configuration syntax, replayed with
// set_config()), and, for names the server does not list, what `current` had. A session value
// equal to the backend's own default is no state (unless the client started with another value).
AdoptedSettings adopt_settings(const SessionProbeAnswer& a, const ParamSet* startup,
                               const ParamSet* current, const std::vector<std::string>& extras);

}  // namespace helios::session
