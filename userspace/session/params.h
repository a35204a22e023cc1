// Session parameters a client asked for (startup packet, later SETs the server reported), as
// an immutable, interned set: thousands of clients with the same parameters share one copy.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace helios::session {

using ParamPairs = std::vector<std::pair<std::string, std::string>>;  // sorted by name

class ParamSet {
 public:
  explicit ParamSet(ParamPairs p) : pairs_(std::move(p)) {}
  const ParamPairs& pairs() const { return pairs_; }
  const std::string* find(std::string_view name) const;

 private:
  ParamPairs pairs_;
};

using ParamSetPtr = std::shared_ptr<const ParamSet>;

class ParamInterner {
 public:
  // Returns the shared set equal to `pairs` (sorted here), creating it if needed.
  ParamSetPtr intern(ParamPairs pairs);
  // The set with `name` set to `value` (or removed when value is null).
  ParamSetPtr with(const ParamSetPtr& base, std::string_view name, const std::string* value);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::weak_ptr<const ParamSet>> sets_;
};

// Parameter names are stored lower-cased (PostgreSQL's GUC names are case-insensitive).
std::string lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);  // ASCII case-insensitive
// The value of parameter `name` in a list of (name, value) pairs, names compared ignoring case.
std::string* find_param(ParamPairs& l, std::string_view name);
const std::string* find_param(const ParamPairs& l, std::string_view name);

// How a carried value is replayed on a backend. A value the server reported (ParameterStatus)
// is plain and replayed as a literal: SET name TO 'value'. A client's SET is replayed as the
// client wrote it (marked kSqlTextMark). Startup parameters and set_config() values are in
// configuration-file syntax (kConfigMark) and replayed with set_config(), the one form that
// parses them as the server did at startup (search_path 'a,b' is two schemas there, one schema
// after SET ... TO 'a,b').
inline constexpr char kSqlTextMark = '\x01';
inline constexpr char kConfigMark = '\x02';
// A backend parameter whose value the proxy does not know (after the client's startup values
// were put back): equal to no value, so the next sync sets it.
inline constexpr std::string_view kUnknownValue = "\x03";
inline std::string sql_text_value(std::string_view v) {
  return kSqlTextMark + std::string(v);
}
inline std::string config_value(std::string_view v) {
  return kConfigMark + std::string(v);
}
// The statement that gives parameter `name` (lower-case) `value` (in any of the forms above).
std::string set_parameter_sql(std::string_view name, const std::string& value);
// The query that puts a client's startup values back after a reset (worker_restore.cpp): each
// settable one the session does not hold as a session value; empty when there are none.
std::string startup_restore_sql(const ParamSet* startup);
// A plain or configuration-syntax value as the server would report it (marks stripped); SQL text
// has no such form and is returned as written.
std::string_view reported_value(const std::string& value);

// DateStyle `value` as PostgreSQL reports it after setting it over `current` ('SQL,DMY' ->
// 'SQL, DMY', 'German' -> 'German, DMY'); nullopt for a value it would refuse.
std::optional<std::string> canonical_datestyle(std::string_view value, std::string_view current);

std::string quote_ident(std::string_view s);
std::string quote_literal(std::string_view s);  // E'...': safe whatever standard_conforming_strings

// Parameters the client may not set on a pooled backend (properties of the connection, reported
// by the server, not of the session).
bool settable(std::string_view lower_name);

// Names (lower-case) whose value the server reports in ParameterStatus and that a client may
// change; the proxy carries them from backend to backend (GUC_REPORT parameters in PostgreSQL 15).
bool is_tracked_parameter(std::string_view name);

}  // namespace helios::session
