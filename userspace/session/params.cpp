#include "session/params.h"

#include <algorithm>
#include <optional>

namespace helios::session {

const std::string* ParamSet::find(std::string_view name) const {
  for (const auto& [k, v] : pairs_)
    if (k == name) return &v;
  return nullptr;
}

namespace {
std::string key_of(const ParamPairs& p) {
  std::string k;
  for (const auto& [n, v] : p) {
    k += n;
    k += '\0';
    k += v;
    k += '\0';
  }
  return k;
}
}  // namespace

ParamSetPtr ParamInterner::intern(ParamPairs pairs) {
  std::sort(pairs.begin(), pairs.end());
  std::string key = key_of(pairs);
  std::lock_guard lock(mu_);
  auto& slot = sets_[key];
  if (auto existing = slot.lock()) return existing;
  auto made = std::make_shared<const ParamSet>(std::move(pairs));
  slot = made;
  // Drop entries whose sets died, now and then, so the table doesn't grow without bound.
  if (sets_.size() > 1024 && sets_.size() % 1024 == 0)
    std::erase_if(sets_, [](const auto& kv) { return kv.second.expired(); });
  return made;
}

ParamSetPtr ParamInterner::with(const ParamSetPtr& base, std::string_view name,
                                const std::string* value) {
  ParamPairs p = base ? base->pairs() : ParamPairs{};
  std::erase_if(p, [&](const auto& kv) { return kv.first == name; });
  if (value) p.emplace_back(std::string(name), *value);
  return intern(std::move(p));
}

size_t ParamInterner::size() const {
  std::lock_guard lock(mu_);
  return sets_.size();
}

bool is_tracked_parameter(std::string_view n) {
  return n == "application_name" || n == "client_encoding" || n == "datestyle" ||
         n == "intervalstyle" || n == "timezone" || n == "standard_conforming_strings" ||
         n == "default_transaction_read_only";
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return out;
}

std::string quote_ident(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

std::string quote_literal(std::string_view s) {
  std::string out = "E'";
  for (char ch : s) {
    if (ch == '\'' || ch == '\\') out += ch;
    out += ch;
  }
  return out + "'";
}

bool settable(std::string_view n) {
  return n != "server_version" && n != "server_encoding" && n != "is_superuser" &&
         n != "session_authorization" && n != "integer_datetimes" && n != "in_hot_standby" &&
         n != "fallback_application_name";
}

std::string set_parameter_sql(std::string_view name, const std::string& value) {
  if (!value.empty() && value[0] == kSqlTextMark)
    return "SET " + quote_ident(name) + " TO " + value.substr(1);
  if (!value.empty() && value[0] == kConfigMark)
    return "SELECT pg_catalog.set_config(" + quote_literal(name) + ", " +
           quote_literal(std::string_view(value).substr(1)) + ", false)";
  return "SET " + quote_ident(name) + " TO " + quote_literal(value);
}

std::string startup_restore_sql(const ParamSet* startup) {
  if (!startup) return {};
  std::string values;
  for (const auto& [name, value] : startup->pairs()) {
    std::string lname = lower(name);  // options=-c names are as the client wrote them
    if (!settable(lname)) continue;
    if (!values.empty()) values += ", ";
    values += "(" + quote_literal(lname) + ", " + quote_literal(reported_value(value)) + ")";
  }
  if (values.empty()) return {};
  return "SELECT pg_catalog.set_config(s.name, v.value, false) FROM (VALUES " + values +
         ") v(name, value) JOIN pg_catalog.pg_settings s ON pg_catalog.lower(s.name) = v.name "
         "WHERE s.source <> 'session'";
}

std::string_view reported_value(const std::string& value) {
  if (!value.empty() && (value[0] == kSqlTextMark || value[0] == kConfigMark))
    return std::string_view(value).substr(1);
  return value;
}

namespace {
// DateStyle's two parts as PostgreSQL prints them (check_datestyle/assign_datestyle).
bool datestyle_token(std::string_view t, std::string& style, std::string& order, bool& order_set) {
  std::string l = lower(t);
  if (l == "iso") {
    style = "ISO";
  } else if (l == "sql") {
    style = "SQL";
  } else if (l.starts_with("postgres")) {
    style = "Postgres";
  } else if (l == "german") {
    style = "German";
    if (!order_set) order = "DMY";  // German implies DMY unless an order is given
  } else if (l == "ymd" || l.starts_with("dmy") || l.starts_with("mdy")) {
    order = l == "ymd" ? "YMD" : l.starts_with("dmy") ? "DMY" : "MDY";
    order_set = true;
  } else if (l == "euro" || l == "european") {
    order = "DMY";
    order_set = true;
  } else if (l == "us" || l == "noneuro" || l == "noneuropean") {
    order = "MDY";
    order_set = true;
  } else {
    return false;
  }
  return true;
}

bool split_datestyle(std::string_view v, std::string& style, std::string& order) {
  bool order_set = false;
  size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && (v[i] == ',' || v[i] == ' ' || v[i] == '\t')) ++i;
    size_t j = i;
    while (j < v.size() && v[j] != ',' && v[j] != ' ' && v[j] != '\t') ++j;
    if (j > i && !datestyle_token(v.substr(i, j - i), style, order, order_set)) return false;
    i = j;
  }
  return true;
}
}  // namespace

std::optional<std::string> canonical_datestyle(std::string_view value, std::string_view current) {
  std::string style = "ISO", order = "MDY";
  std::string cur_style = style, cur_order = order;
  if (split_datestyle(current, cur_style, cur_order)) style = cur_style, order = cur_order;
  if (!split_datestyle(value, style, order)) return std::nullopt;
  return style + ", " + order;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = char(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = char(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string* find_param(ParamPairs& l, std::string_view name) {
  for (auto& [k, v] : l)
    if (iequals(k, name)) return &v;
  return nullptr;
}

const std::string* find_param(const ParamPairs& l, std::string_view name) {
  for (const auto& [k, v] : l)
    if (iequals(k, name)) return &v;
  return nullptr;
}

}  // namespace helios::session
