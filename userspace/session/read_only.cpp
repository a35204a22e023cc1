#include "session/read_only.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "session/sql_lexer.h"

namespace helios::session {
namespace {

// Words that may stand before "(" without being a function call.
constexpr std::string_view kKeywordsBeforeParen[] = {
    "in",       "exists",    "any",    "some",     "all",       "values", "select",  "from",
    "join",     "as",        "on",     "where",    "and",       "or",     "not",     "by",
    "over",     "filter",    "within", "using",    "lateral",   "when",   "then",    "else",
    "case",     "between",   "is",     "distinct", "partition", "having", "limit",   "offset",
    "union",    "intersect", "except", "array",    "row",       "cast",   "extract", "substring",
    "position", "overlay",   "trim",   "with"};

// Built-in functions that read only (no writes, no locks, no sequence or session changes).
constexpr std::string_view kReadOnlyFunctions[] = {"count",
                                                   "sum",
                                                   "avg",
                                                   "min",
                                                   "max",
                                                   "abs",
                                                   "round",
                                                   "floor",
                                                   "ceil",
                                                   "ceiling",
                                                   "trunc",
                                                   "sign",
                                                   "mod",
                                                   "power",
                                                   "sqrt",
                                                   "exp",
                                                   "ln",
                                                   "log",
                                                   "pi",
                                                   "random",
                                                   "length",
                                                   "char_length",
                                                   "octet_length",
                                                   "bit_length",
                                                   "lower",
                                                   "upper",
                                                   "initcap",
                                                   "concat",
                                                   "concat_ws",
                                                   "replace",
                                                   "split_part",
                                                   "left",
                                                   "right",
                                                   "lpad",
                                                   "rpad",
                                                   "btrim",
                                                   "ltrim",
                                                   "rtrim",
                                                   "md5",
                                                   "strpos",
                                                   "starts_with",
                                                   "format",
                                                   "quote_ident",
                                                   "quote_literal",
                                                   "encode",
                                                   "decode",
                                                   "reverse",
                                                   "repeat",
                                                   "translate",
                                                   "regexp_replace",
                                                   "regexp_match",
                                                   "regexp_matches",
                                                   "string_to_array",
                                                   "array_to_string",
                                                   "array_length",
                                                   "array_agg",
                                                   "string_agg",
                                                   "unnest",
                                                   "generate_series",
                                                   "bool_and",
                                                   "bool_or",
                                                   "every",
                                                   "stddev",
                                                   "variance",
                                                   "coalesce",
                                                   "nullif",
                                                   "greatest",
                                                   "least",
                                                   "now",
                                                   "clock_timestamp",
                                                   "statement_timestamp",
                                                   "date_trunc",
                                                   "date_part",
                                                   "age",
                                                   "to_char",
                                                   "to_date",
                                                   "to_timestamp",
                                                   "to_number",
                                                   "make_date",
                                                   "make_interval",
                                                   "json_agg",
                                                   "jsonb_agg",
                                                   "json_build_object",
                                                   "jsonb_build_object",
                                                   "row_to_json",
                                                   "to_json",
                                                   "to_jsonb",
                                                   "jsonb_array_elements",
                                                   "json_array_elements",
                                                   "jsonb_each",
                                                   "inet_server_port",
                                                   "inet_server_addr",
                                                   "pg_is_in_recovery",
                                                   "version",
                                                   "current_database"};

bool in(std::string_view w, const auto& list) {
  return std::find(std::begin(list), std::end(list), w) != std::end(list);
}

bool is_word(const SqlToken& t, std::string_view w) {
  return t.kind == SqlToken::Kind::kWord && t.text == w;
}

ReadClass classify_statement(const std::vector<SqlToken>& t) {
  if (t.empty()) return ReadClass::kReadOnly;                        // an empty statement
  if (t.size() >= SqlLexer::kMaxTokens) return ReadClass::kPrimary;  // not all seen
  const SqlToken& first = t.front();
  if (first.kind != SqlToken::Kind::kWord) return ReadClass::kPrimary;
  if (first.text == "begin" ||
      (first.text == "start" && t.size() > 1 && is_word(t[1], "transaction"))) {
    bool read_only = false;
    for (size_t i = 1; i < t.size(); ++i) {
      if (is_word(t[i], "serializable")) return ReadClass::kPrimary;
      if (is_word(t[i], "read") && i + 1 < t.size()) {
        if (is_word(t[i + 1], "only")) read_only = true;
        if (is_word(t[i + 1], "write")) return ReadClass::kPrimary;
      }
    }
    return read_only ? ReadClass::kReadOnlyBegin : ReadClass::kPrimary;
  }
  const bool with = first.text == "with";
  if (!with && first.text != "select" && first.text != "values" && first.text != "table")
    return ReadClass::kPrimary;
  for (size_t i = 0; i < t.size(); ++i) {
    const SqlToken& k = t[i];
    const bool paren_next =
        i + 1 < t.size() && t[i + 1].kind == SqlToken::Kind::kPunct && t[i + 1].text == "(";
    if (k.kind == SqlToken::Kind::kQuoted) {
      if (paren_next) return ReadClass::kPrimary;  // "MyFunction"(...)
      continue;
    }
    if (k.kind != SqlToken::Kind::kWord) continue;
    if (k.text == "into") return ReadClass::kPrimary;
    if (with &&
        (k.text == "insert" || k.text == "update" || k.text == "delete" || k.text == "merge"))
      return ReadClass::kPrimary;
    if (k.text == "for" && i + 1 < t.size() &&
        (is_word(t[i + 1], "update") || is_word(t[i + 1], "share") || is_word(t[i + 1], "no") ||
         is_word(t[i + 1], "key")))
      return ReadClass::kPrimary;
    if (paren_next && !in(k.text, kKeywordsBeforeParen) && !in(k.text, kReadOnlyFunctions))
      return ReadClass::kPrimary;
  }
  return ReadClass::kReadOnly;
}

ReadClass combine(ReadClass acc, ReadClass next) {
  if (acc == ReadClass::kPrimary || next == ReadClass::kPrimary) return ReadClass::kPrimary;
  if (acc == ReadClass::kReadOnlyBegin || next == ReadClass::kReadOnlyBegin)
    return ReadClass::kReadOnlyBegin;
  return ReadClass::kReadOnly;
}

uint32_t be32(const char* p) {
  return (uint32_t(uint8_t(p[0])) << 24) | (uint32_t(uint8_t(p[1])) << 16) |
         (uint32_t(uint8_t(p[2])) << 8) | uint32_t(uint8_t(p[3]));
}

// A NUL-terminated string at body[pos]; false if there is none.
bool cstring(std::string_view body, size_t& pos, std::string_view& out) {
  size_t end = body.find('\0', pos);
  if (end == std::string_view::npos) return false;
  out = body.substr(pos, end - pos);
  pos = end + 1;
  return true;
}

}  // namespace

ReadClass classify_sql(std::string_view sql) {
  if (sql.find("helios:primary") != std::string_view::npos) return ReadClass::kPrimary;
  SqlLexer lexer(sql);
  std::vector<SqlToken> tokens;
  size_t end = 0;
  ReadClass acc = ReadClass::kReadOnly;
  bool begun = false;
  while (lexer.next_statement(&tokens, &end)) {
    ReadClass c = classify_statement(tokens);
    // After BEGIN READ ONLY only read-only statements keep it on the replica (no COMMIT then a
    // write in the same text); a second BEGIN is not proven either.
    if (begun && c != ReadClass::kReadOnly) return ReadClass::kPrimary;
    begun = begun || c == ReadClass::kReadOnlyBegin;
    acc = combine(acc, c);
    if (acc == ReadClass::kPrimary) return acc;
  }
  return acc;
}

ReadClass classify_batch(std::string_view bytes, const StatementText& lookup) {
  ReadClass acc = ReadClass::kReadOnly;
  std::vector<std::string> parsed;  // statement names parsed in this batch
  char last = 0;
  size_t off = 0;
  bool any = false;
  while (off < bytes.size()) {
    if (bytes.size() - off < 5) return ReadClass::kPrimary;
    const char type = bytes[off];
    const uint32_t len = be32(bytes.data() + off + 1);
    if (len < 4 || bytes.size() - off - 1 < len) return ReadClass::kPrimary;  // incomplete
    std::string_view body = bytes.substr(off + 5, len - 4);
    off += 1 + len;
    size_t pos = 0;
    std::string_view name, query;
    ReadClass c = ReadClass::kReadOnly;
    switch (type) {
      case 'Q':
        if (!cstring(body, pos, query)) return ReadClass::kPrimary;
        c = classify_sql(query);
        break;
      case 'P':
        if (!cstring(body, pos, name) || !cstring(body, pos, query)) return ReadClass::kPrimary;
        c = classify_sql(query);
        parsed.emplace_back(name);
        break;
      case 'B': {
        std::string_view portal;
        if (!cstring(body, pos, portal) || !cstring(body, pos, name)) return ReadClass::kPrimary;
        if (std::find(parsed.begin(), parsed.end(), name) == parsed.end()) {
          auto text = lookup ? lookup(name) : std::nullopt;
          if (!text) return ReadClass::kPrimary;
          c = classify_sql(*text);
        }
        break;
      }
      case 'D':  // Describe 'S' name: a statement prepared earlier is only described
      case 'E':
      case 'C':
      case 'H':
      case 'S':
        break;
      default:
        return ReadClass::kPrimary;  // FunctionCall, COPY data, Terminate, ...
    }
    if (c == ReadClass::kReadOnlyBegin && acc == ReadClass::kReadOnlyBegin)
      return ReadClass::kPrimary;
    acc = combine(acc, c);
    if (acc == ReadClass::kPrimary) return acc;
    last = type;
    any = true;
  }
  if (!any || (last != 'S' && last != 'Q')) return ReadClass::kPrimary;
  return acc;
}

const char* to_string(ReadClass c) {
  switch (c) {
    case ReadClass::kPrimary:
      return "primary";
    case ReadClass::kReadOnly:
      return "read_only";
    case ReadClass::kReadOnlyBegin:
      return "read_only_begin";
  }
  return "primary";
}

}  // namespace helios::session
