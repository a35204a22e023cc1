#include "session/sql_inspect.h"

#include "session/params.h"

#include <algorithm>
#include <cctype>

namespace helios::session {
namespace {

char lower_ch(char c) {
  return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
}

bool ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool ident_char(char c) {
  return ident_start(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$';
}

// Calls fn(statement, last) for the statements of `s`, split at ';' outside quotes, dollar
// quotes and comments.
template <typename F>
void for_each_statement(std::string_view s, F&& fn) {
  size_t start = 0, i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == '\'' || c == '"') {
      for (++i; i < s.size() && s[i] != c; ++i) {
      }
      ++i;
    } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      auto end = s.find("*/", i + 2);
      i = end == std::string_view::npos ? s.size() : end + 2;
    } else if (c == '$') {
      size_t j = i + 1;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      if (j < s.size() && s[j] == '$') {
        std::string_view tag = s.substr(i, j - i + 1);
        auto end = s.find(tag, j + 1);
        i = end == std::string_view::npos ? s.size() : end + tag.size();
      } else {
        i = j;
      }
    } else if (c == ';') {
      fn(s.substr(start, i - start), false);
      start = ++i;
    } else {
      ++i;
    }
  }
  fn(s.substr(std::min(start, s.size())), true);
}

// Words of a statement: identifiers/keywords (unquoted lower-cased, quoted kept), with the
// offset where each ends, so a SET's value can be taken verbatim.
struct Word {
  std::string text;
  bool quoted = false;
  size_t end = 0;
};

std::vector<Word> words(std::string_view s, size_t max_words) {
  std::vector<Word> out;
  size_t i = 0;
  while (i < s.size() && out.size() < max_words) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      auto end = s.find("*/", i + 2);
      i = end == std::string_view::npos ? s.size() : end + 2;
    } else if (c == '"') {
      size_t j = i + 1;
      std::string t;
      while (j < s.size()) {
        if (s[j] == '"') {
          if (j + 1 < s.size() && s[j + 1] == '"') {
            t += '"';
            j += 2;
            continue;
          }
          break;
        }
        t += s[j++];
      }
      out.push_back({t, true, std::min(j + 1, s.size())});
      i = j + 1;
    } else if (ident_start(c)) {
      size_t j = i;
      std::string t;
      while (j < s.size() && ident_char(s[j])) t += lower_ch(s[j++]);
      out.push_back({t, false, j});
      i = j;
    } else {
      out.push_back({std::string(1, c), false, i + 1});
      ++i;
    }
  }
  return out;
}

std::string trim(std::string_view v) {
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.remove_prefix(1);
  // A simple Query's text ends with its NUL terminator: not part of a value.
  while (!v.empty() && (v.back() == '\0' || std::isspace(static_cast<unsigned char>(v.back()))))
    v.remove_suffix(1);
  return std::string(v);
}

bool contains_ci(std::string_view hay, std::string_view needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                        [](char a, char b) { return lower_ch(a) == b; });
  return it != hay.end();
}

size_t count_ci(std::string_view hay, std::string_view needle) {
  size_t n = 0;
  auto it = hay.begin();
  for (;;) {
    it = std::search(it, hay.end(), needle.begin(), needle.end(),
                     [](char a, char b) { return lower_ch(a) == b; });
    if (it == hay.end()) return n;
    ++n;
    it += needle.size();
  }
}

// Last component of a possibly schema-qualified name starting at words[i].
std::string qualified_name(const std::vector<Word>& w, size_t i, size_t* next) {
  std::string name = i < w.size() ? w[i].text : "";
  size_t j = i + 1;
  while (j + 1 < w.size() && w[j].text == ".") {
    name = w[j + 1].text;
    j += 2;
  }
  if (next) *next = j;
  return name;
}

// A '...' literal at s[i] (after blanks): its value, and i moved past it.
bool take_literal(std::string_view s, size_t& i, std::string& v) {
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  if (i >= s.size() || s[i] != '\'') return false;
  v.clear();
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\'') {
      if (i + 1 < s.size() && s[i + 1] == '\'') {
        v += '\'';
        ++i;
        continue;
      }
      ++i;
      return true;
    }
    v += s[i];
  }
  return false;
}

bool take_char(std::string_view s, size_t& i, char c) {
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  if (i >= s.size() || s[i] != c) return false;
  ++i;
  return true;
}

// set_config(name, value, is_local) in any statement. With literal arguments and is_local false
// it is a SET in configuration-file syntax; with is_local true it ends with the transaction;
// anything else (parameters, expressions) cannot be carried and pins.
void inspect_set_config(std::string_view stmt, std::vector<SessionEffect>& out) {
  using K = SessionEffect::Kind;
  static constexpr std::string_view kFn = "set_config";
  size_t from = 0;
  for (;;) {
    auto it = std::search(stmt.begin() + from, stmt.end(), kFn.begin(), kFn.end(),
                          [](char a, char b) { return lower_ch(a) == b; });
    if (it == stmt.end()) return;
    size_t i = size_t(it - stmt.begin()) + kFn.size();
    from = i;
    if (it != stmt.begin() && ident_char(*(it - 1))) continue;  // part of another name
    std::string name, value;
    bool named = take_char(stmt, i, '(') && take_literal(stmt, i, name);
    for (char& ch : name) ch = lower_ch(ch);
    bool literal =
        named && take_char(stmt, i, ',') && take_literal(stmt, i, value) && take_char(stmt, i, ',');
    auto flag = literal ? words(stmt.substr(i), 2) : std::vector<Word>{};
    bool local =
        flag.size() == 2 && flag[1].text == ")" && (flag[0].text == "true" || flag[0].text == "t");
    bool session =
        flag.size() == 2 && flag[1].text == ")" && (flag[0].text == "false" || flag[0].text == "f");
    if (local) continue;
    if (session)
      out.push_back({K::kSet, PinReason::kCount, name, config_value(value)});
    else
      out.push_back({K::kPin, PinReason::kUntrackedSet, named ? name : "set_config()", ""});
  }
}

// The first keyword of a statement (after blanks, comments and parentheses), as written.
std::string_view first_keyword(std::string_view s) {
  size_t i = 0;
  for (;;) {
    while (i < s.size() && (std::isspace(static_cast<unsigned char>(s[i])) || s[i] == '(')) ++i;
    if (s.substr(i, 2) == "--") {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (s.substr(i, 2) == "/*") {
      auto end = s.find("*/", i + 2);
      i = end == std::string_view::npos ? s.size() : end + 2;
    } else {
      break;
    }
  }
  size_t j = i;
  while (j < s.size() && ident_char(s[j])) ++j;
  return s.substr(i, j - i);
}

// Plain queries and DML (most of the traffic) change session state only through functions they
// call or SELECT ... INTO TEMP: skip the word-by-word analysis when none of those appear.
bool plainly_stateless(std::string_view stmt) {
  std::string_view kw = first_keyword(stmt);
  bool query = iequals(kw, "select") || iequals(kw, "with");  // SELECT ... INTO TEMP t
  bool dml = query || iequals(kw, "insert") || iequals(kw, "update") || iequals(kw, "delete") ||
             iequals(kw, "values") || iequals(kw, "table");
  return dml && !contains_ci(stmt, "advisory") && !contains_ci(stmt, "set_config") &&
         !(query && contains_ci(stmt, "into"));
}

void inspect_one(std::string_view stmt, bool cut, std::vector<SessionEffect>& out) {
  using K = SessionEffect::Kind;
  if (plainly_stateless(stmt)) return;
  auto w = words(stmt, 16);
  if (w.empty()) return;
  const std::string& first = w[0].text;
  auto at = [&](size_t i) -> const std::string& {
    static const std::string empty;
    return i < w.size() ? w[i].text : empty;
  };

  if (contains_ci(stmt, "set_config")) inspect_set_config(stmt, out);
  // Advisory locks can hide in any statement (SELECT pg_advisory_lock(1)).
  size_t locks = count_ci(stmt, "pg_advisory_lock") + count_ci(stmt, "pg_try_advisory_lock");
  size_t unlocks =
      count_ci(stmt, "pg_advisory_unlock(") + count_ci(stmt, "pg_advisory_unlock_shared(");
  if (contains_ci(stmt, "pg_advisory_unlock_all"))
    out.push_back({K::kUnpin, PinReason::kAdvisoryLock, "", ""});
  for (size_t i = 0; i < locks; ++i) out.push_back({K::kPin, PinReason::kAdvisoryLock, "", ""});
  for (size_t i = 0; i < unlocks; ++i)
    out.push_back({K::kUnpin, PinReason::kAdvisoryLock, "1", ""});

  if (first == "begin" || (first == "start" && at(1) == "transaction")) {
    out.push_back({K::kBegin});
  } else if (first == "set") {
    size_t i = 1;
    if (at(1) == "local") return;  // transaction-scoped: nothing outlives the transaction
    if (at(1) == "session") {
      if (at(2) == "authorization" || at(2) == "characteristics") {
        out.push_back(
            {K::kPin, PinReason::kUntrackedSet,
             at(2) == "authorization" ? "session_authorization" : "default_transaction_isolation",
             ""});
        return;
      }
      i = 2;
    }
    if (at(i) == "transaction") return;  // SET TRANSACTION ...: this transaction only
    std::string name;
    size_t value_from;
    bool time_zone = at(i) == "time" && at(i + 1) == "zone";
    if (time_zone) {
      name = "timezone";
      value_from = i + 2;
    } else if (at(i) == "role") {
      out.push_back({K::kPin, PinReason::kUntrackedSet, "role", ""});
      return;
    } else {
      size_t next;
      name = at(i);
      // Dotted custom parameters (myapp.tenant): keep the whole name.
      next = i + 1;
      while (next + 1 < w.size() && w[next].text == ".") {
        name += "." + w[next + 1].text;
        next += 2;
      }
      value_from = next;
      if (at(value_from) == "to" || at(value_from) == "=") ++value_from;
    }
    if (name.empty() || value_from > w.size()) return;
    size_t begin = value_from == 0 ? 0 : w[value_from - 1].end;
    std::string value = trim(stmt.substr(std::min(begin, stmt.size())));
    if (value.empty()) return;
    std::string lv = value;
    std::transform(lv.begin(), lv.end(), lv.begin(), lower_ch);
    if (cut)  // the value may be cut short: it cannot be replayed, so the session is pinned
      out.push_back({K::kPin, PinReason::kUntrackedSet, name, ""});
    else if (lv == "default" || (time_zone && lv == "local"))  // SET TIME ZONE LOCAL
      out.push_back({K::kReset, PinReason::kCount, name, ""});
    else
      out.push_back({K::kSet, PinReason::kCount, name, value});
  } else if (first == "reset") {
    if (at(1) == "all")
      out.push_back({K::kResetAll});
    else if (at(1) == "session" && at(2) == "authorization")
      out.push_back({K::kUnpin, PinReason::kUntrackedSet, "session_authorization", ""});
    else if (at(1) == "role")
      out.push_back({K::kUnpin, PinReason::kUntrackedSet, "role", ""});
    else if (at(1) == "time" && at(2) == "zone")
      out.push_back({K::kReset, PinReason::kCount, "timezone", ""});
    else if (!at(1).empty())
      out.push_back({K::kReset, PinReason::kCount, at(1), ""});
  } else if (first == "discard") {
    if (at(1) == "all")
      out.push_back({K::kDiscardAll});
    else if (at(1) == "temp" || at(1) == "temporary")
      out.push_back({K::kUnpin, PinReason::kTempTable, "", ""});
  } else if (first == "deallocate") {
    size_t i = at(1) == "prepare" ? 2 : 1;
    if (at(i) == "all") {
      out.push_back({K::kDeallocateAll});
    } else if (!at(i).empty()) {
      out.push_back({K::kDeallocate, PinReason::kCount, at(i), ""});
      out.push_back({K::kUnpin, PinReason::kSqlPrepare, at(i), ""});
    }
  } else if (first == "prepare" && !at(1).empty() && at(1) != "transaction") {
    out.push_back({K::kPin, PinReason::kSqlPrepare, at(1), ""});
  } else if (first == "create") {
    size_t i = 1;
    if (at(i) == "or" && at(i + 1) == "replace") i += 2;
    if (at(i) == "global" || at(i) == "local") ++i;
    if (at(i) != "temp" && at(i) != "temporary") return;
    ++i;
    if (at(i) == "unlogged") ++i;
    if (at(i) != "table" && at(i) != "view" && at(i) != "sequence") return;
    ++i;
    if (at(i) == "if" && at(i + 1) == "not" && at(i + 2) == "exists") i += 3;
    std::string name = qualified_name(w, i, nullptr);
    // ON COMMIT DROP tables die with the transaction: nothing to pin.
    if (contains_ci(stmt, "on commit drop")) return;
    out.push_back({K::kPin, PinReason::kTempTable, name, ""});
  } else if (first == "select" || first == "with") {
    // SELECT ... INTO TEMP name
    auto all = words(stmt, 4096);
    for (size_t i = 0; i + 2 < all.size(); ++i)
      if (all[i].text == "into" && (all[i + 1].text == "temp" || all[i + 1].text == "temporary")) {
        size_t j = i + 2;
        if (j < all.size() && all[j].text == "table") ++j;
        out.push_back({K::kPin, PinReason::kTempTable, qualified_name(all, j, nullptr), ""});
      }
  } else if (first == "drop" && at(1) == "table") {
    auto all = words(stmt, 4096);
    size_t i = 2;
    if (i + 1 < all.size() && all[i].text == "if" && all[i + 1].text == "exists") i += 2;
    while (i < all.size()) {
      if (all[i].text == "cascade" || all[i].text == "restrict") break;
      size_t next;
      std::string name = qualified_name(all, i, &next);
      out.push_back({K::kUnpin, PinReason::kTempTable, name, ""});
      i = next;
      if (i < all.size() && all[i].text == ",")
        ++i;
      else
        break;
    }
  } else if (first == "declare") {
    // DECLARE name [BINARY] [ASENSITIVE|INSENSITIVE] [[NO] SCROLL] CURSOR {WITH|WITHOUT} HOLD
    for (size_t i = 2; i + 2 < w.size(); ++i)
      if (w[i].text == "cursor") {
        if (w[i + 1].text == "with" && w[i + 2].text == "hold")
          out.push_back({K::kPin, PinReason::kHoldCursor, w[1].text, ""});
        break;
      }
  } else if (first == "close") {
    out.push_back({K::kUnpin, PinReason::kHoldCursor, at(1) == "all" ? "" : at(1), ""});
  } else if (first == "listen" && !at(1).empty()) {
    out.push_back({K::kPin, PinReason::kListen, at(1), ""});
  } else if (first == "unlisten") {
    out.push_back({K::kUnpin, PinReason::kListen, at(1) == "*" ? "" : at(1), ""});
  }
}

// Words that may stand right before '(' in plain SQL without being a function call: keywords,
// type names with a modifier (varchar(20)), and positions where a table or alias name takes a
// column list.
bool keyword_before_paren(std::string_view w) {
  static constexpr std::string_view kWords[] = {
      "all",      "and",       "any",       "array",       "as",       "between",   "bigint",
      "bit",      "by",        "case",      "cast",        "char",     "character", "conflict",
      "cube",     "date",      "decimal",   "default",     "distinct", "do",        "double",
      "else",     "except",    "exists",    "filter",      "float",    "from",      "group",
      "grouping", "having",    "ilike",     "in",          "int",      "integer",   "intersect",
      "interval", "is",        "join",      "lateral",     "like",     "limit",     "not",
      "numeric",  "offset",    "on",        "or",          "over",     "partition", "precision",
      "real",     "recursive", "returning", "rollup",      "row",      "select",    "set",
      "sets",     "smallint",  "some",      "then",        "time",     "timestamp", "timestamptz",
      "union",    "using",     "values",    "varchar",     "varying",  "when",      "where",
      "window",   "with",      "within",    "materialized"};
  for (auto k : kWords)
    if (w == k) return true;
  return false;
}

// Built-in functions that cannot change session state (callable unqualified or in pg_catalog).
// nextval/setval are here although currval/lastval are session state the server does not list.
bool harmless_function(std::string_view f) {
  static constexpr std::string_view kFns[] = {"abs",
                                              "age",
                                              "array_agg",
                                              "array_position",
                                              "current_schemas",
                                              "current_database",
                                              "array_length",
                                              "array_to_string",
                                              "avg",
                                              "bool_and",
                                              "bool_or",
                                              "btrim",
                                              "cardinality",
                                              "ceil",
                                              "ceiling",
                                              "clock_timestamp",
                                              "coalesce",
                                              "concat",
                                              "concat_ws",
                                              "count",
                                              "current_setting",
                                              "date_part",
                                              "date_trunc",
                                              "decode",
                                              "dense_rank",
                                              "encode",
                                              "every",
                                              "exp",
                                              "extract",
                                              "first_value",
                                              "floor",
                                              "format",
                                              "gen_random_uuid",
                                              "generate_series",
                                              "greatest",
                                              "jsonb_agg",
                                              "jsonb_build_object",
                                              "json_agg",
                                              "json_build_object",
                                              "lag",
                                              "last_value",
                                              "lead",
                                              "least",
                                              "left",
                                              "length",
                                              "ln",
                                              "log",
                                              "lower",
                                              "ltrim",
                                              "max",
                                              "md5",
                                              "min",
                                              "mod",
                                              "nextval",
                                              "now",
                                              "nullif",
                                              "overlay",
                                              "pg_backend_pid",
                                              "pg_sleep",
                                              "pg_typeof",
                                              "position",
                                              "power",
                                              "random",
                                              "rank",
                                              "regexp_replace",
                                              "repeat",
                                              "replace",
                                              "reverse",
                                              "right",
                                              "round",
                                              "row_number",
                                              "rtrim",
                                              "setval",
                                              "sign",
                                              "split_part",
                                              "sqrt",
                                              "statement_timestamp",
                                              "string_agg",
                                              "string_to_array",
                                              "strpos",
                                              "substr",
                                              "substring",
                                              "sum",
                                              "to_char",
                                              "to_date",
                                              "to_json",
                                              "to_jsonb",
                                              "to_number",
                                              "to_regclass",
                                              "to_timestamp",
                                              "transaction_timestamp",
                                              "trim",
                                              "trunc",
                                              "unnest",
                                              "upper",
                                              "version"};
  for (auto k : kFns)
    if (f == k) return true;
  return false;
}

// A call of a function other than the harmless built-ins: name '(' where the name is not a
// keyword, a type, or a table name taking a column list (INSERT INTO t (a, b)).
bool has_opaque_call(std::string_view stmt) {
  if (stmt.find('(') == std::string_view::npos) return false;
  auto w = words(stmt, 4096);
  auto table_position = [&](size_t i) {  // words[i] is where a table name would be preceded
    return w[i].text == "into" || w[i].text == "table" || w[i].text == "only" ||
           w[i].text == "update" || w[i].text == "as";
  };
  for (size_t i = 1; i < w.size(); ++i) {
    if (w[i].text != "(" || w[i].quoted) continue;
    const Word& name = w[i - 1];
    if (!name.quoted && (name.text.empty() || !ident_start(name.text[0]))) continue;
    bool qualified = i >= 3 && w[i - 2].text == "." && !w[i - 2].quoted;
    size_t before = qualified ? i - 3 : i - 1;  // the word before the (qualified) name
    if (before > 0 && table_position(before - 1)) continue;
    if (before > 0 && w[before - 1].text == ")") continue;  // (subquery) alias(columns)
    if (!name.quoted && !qualified && keyword_before_paren(name.text)) continue;
    bool catalog = !qualified || (w[i - 3].text == "pg_catalog" && !w[i - 3].quoted);
    if (!name.quoted && catalog && harmless_function(name.text)) continue;
    return true;
  }
  return false;
}

bool statement_may_change_session(std::string_view stmt) {
  std::string_view kw = first_keyword(stmt);
  if (kw.empty()) return false;
  auto is = [&](std::string_view k) { return iequals(kw, k); };
  bool query = is("select") || is("with");
  if (query || is("insert") || is("update") || is("delete") || is("values") || is("table") ||
      is("merge") || is("explain") || is("copy"))
    return contains_ci(stmt, "pg_temp") || contains_ci(stmt, "set_config") ||
           contains_ci(stmt, "advisory") || (query && contains_ci(stmt, "into")) ||
           has_opaque_call(stmt);
  if (is("begin") || is("start")) return false;
  if (is("commit") || is("end") || is("abort") || is("rollback")) {
    auto w = words(stmt, 8);
    for (const auto& x : w)
      if (x.text == "chain" || x.text == "to" || x.text == "prepared") return true;
    return false;
  }
  if (is("set") || is("reset")) {
    // Their effects (inspect_sql) are exact, except the TIME ZONE forms whose value cannot be
    // replayed as written (INTERVAL '+02:00' HOUR TO MINUTE): those ask the server.
    auto w = words(stmt, 3);
    return w.size() >= 3 && w[1].text == "time" && w[2].text == "zone";
  }
  // Statements that leave no session state behind whatever they do.
  static constexpr std::string_view kStateless[] = {
      "show",  "lock",   "truncate", "notify",  "vacuum",  "analyze", "checkpoint",
      "grant", "revoke", "comment",  "refresh", "reindex", "cluster", "alter"};
  for (auto k : kStateless)
    if (is(k)) return false;
  return true;  // SET, RESET, SAVEPOINT, DO, CALL, CREATE, DROP, FETCH, unknown...
}

}  // namespace

bool may_change_session(std::string_view sql, bool complete) {
  bool any = false;
  for_each_statement(sql, [&](std::string_view stmt, bool last) {
    if (!any && ((!complete && last) || statement_may_change_session(stmt))) any = true;
  });
  return any;
}

bool effects_need_probe(const std::vector<SessionEffect>& effects,
                        const std::vector<std::string>& extras) {
  using K = SessionEffect::Kind;
  for (const auto& e : effects) {
    bool exact =
        e.kind == K::kBegin || e.kind == K::kResetAll ||
        ((e.kind == K::kSet || e.kind == K::kReset) && is_carried_parameter(e.name, extras));
    if (!exact) return true;
  }
  return false;
}

const char* pin_reason_name(PinReason r) {
  switch (r) {
    case PinReason::kTempTable:
      return "temp_table";
    case PinReason::kAdvisoryLock:
      return "advisory_lock";
    case PinReason::kHoldCursor:
      return "hold_cursor";
    case PinReason::kListen:
      return "listen";
    case PinReason::kSqlPrepare:
      return "sql_prepare";
    case PinReason::kUntrackedSet:
      return "untracked_set";
    case PinReason::kNamedStatement:
      return "named_statement";
    case PinReason::kCount:
      break;
  }
  return "?";
}

std::vector<SessionEffect> inspect_sql(std::string_view sql, bool complete) {
  std::vector<SessionEffect> out;
  // A statement cut off at the end of the captured text: its first words are still reliable.
  for_each_statement(
      sql, [&](std::string_view stmt, bool last) { inspect_one(stmt, !complete && last, out); });
  return out;
}

bool pins_session(const SessionEffect& e, const std::vector<std::string>& extras) {
  return e.kind == SessionEffect::Kind::kPin ||
         (e.kind == SessionEffect::Kind::kSet && !is_carried_parameter(e.name, extras));
}

bool is_carried_parameter(std::string_view n, const std::vector<std::string>& extras) {
  static constexpr std::string_view kBuiltIn[] = {"application_name",
                                                  "client_encoding",
                                                  "datestyle",
                                                  "intervalstyle",
                                                  "timezone",
                                                  "standard_conforming_strings",
                                                  "search_path",
                                                  "statement_timeout",
                                                  "lock_timeout",
                                                  "idle_in_transaction_session_timeout",
                                                  "default_transaction_read_only",
                                                  "default_transaction_isolation",
                                                  "extra_float_digits",
                                                  "bytea_output",
                                                  "work_mem"};
  for (auto b : kBuiltIn)
    if (n == b) return true;
  for (const auto& e : extras)
    if (n == e) return true;
  return false;
}

}  // namespace helios::session
