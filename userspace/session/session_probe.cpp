#include "session/session_probe.h"

#include <charconv>

#include "session/sql_inspect.h"

namespace helios::session {

std::string_view session_probe_sql() {
  return "SELECT 's', pg_catalog.lower(name), setting, reset_val FROM pg_catalog.pg_settings "
         "WHERE source = 'session' "
         "UNION ALL SELECT 'l', NULL, pg_catalog.count(*)::text, NULL FROM pg_catalog.pg_locks "
         "WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid() "
         // A backend that never made a temp object has no temp schema: no catalog scan.
         "UNION ALL SELECT 't', NULL, CASE WHEN pg_catalog.pg_my_temp_schema() = 0 THEN '0' "
         "ELSE ((SELECT pg_catalog.count(*) FROM pg_catalog.pg_class WHERE relnamespace = "
         "pg_catalog.pg_my_temp_schema()) + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_proc "
         "WHERE pronamespace = pg_catalog.pg_my_temp_schema()))::text END, NULL "
         "UNION ALL SELECT 'n', c, NULL, NULL FROM pg_catalog.pg_listening_channels() c "
         "UNION ALL SELECT 'p', name, NULL, NULL FROM pg_catalog.pg_prepared_statements "
         "WHERE from_sql "
         "UNION ALL SELECT 'c', name, NULL, NULL FROM pg_catalog.pg_cursors WHERE is_holdable";
}

namespace {

bool to_int(std::string_view s, int64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

bool add_probe_row(SessionProbeAnswer& a, const std::vector<std::optional<std::string_view>>& row) {
  if (row.size() != 4 || !row[0] || row[0]->size() != 1) return false;
  auto str = [&](size_t i) { return row[i] ? std::string(*row[i]) : std::string(); };
  switch ((*row[0])[0]) {
    case 's':
      if (!row[1] || !row[2]) return false;
      a.settings.push_back({str(1), str(2), str(3)});
      return true;
    case 'l':
      return row[2] && to_int(*row[2], a.advisory_locks);
    case 't':
      return row[2] && to_int(*row[2], a.temp_objects);
    case 'n':
      a.listening.push_back(str(1));
      return true;
    case 'p':
      a.sql_prepared.push_back(str(1));
      return true;
    case 'c':
      a.hold_cursors.push_back(str(1));
      return true;
    default:
      return false;
  }
}

bool probe_cannot_see(std::string_view n) {
  return n.find('.') != std::string_view::npos || n == "role" || n == "session_authorization" ||
         n == "set_config()";
}

AdoptedSettings adopt_settings(const SessionProbeAnswer& a, const ParamSet* startup,
                               const ParamSet* current, const std::vector<std::string>& extras) {
  AdoptedSettings out;
  auto put = [&](std::string_view name, std::string value) {
    if (std::string* v = find_param(out.params, name))
      *v = std::move(value);
    else
      out.params.emplace_back(std::string(name), std::move(value));
  };
  if (startup)
    for (const auto& [n, v] : startup->pairs()) put(n, v);
  if (current)
    for (const auto& [n, v] : current->pairs())
      if (probe_cannot_see(n)) put(n, v);
  for (const auto& s : a.settings) {
    if (!settable(s.name) || probe_cannot_see(s.name)) continue;
    bool from_startup = startup && startup->find(s.name);
    if (is_carried_parameter(s.name, extras) || from_startup) {
      if (s.value != s.reset || from_startup) put(s.name, config_value(s.value));
    } else if (s.value != s.reset) {
      out.untracked.push_back(s.name);
    }
  }
  return out;
}

}  // namespace helios::session
