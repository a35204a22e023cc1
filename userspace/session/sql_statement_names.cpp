#include "session/sql_statement_names.h"

#include "session/sql_lexer.h"

namespace helios::session {
namespace {

using Token = SqlToken;

bool is_name(const Token& t) {
  return t.kind == SqlToken::Kind::kWord || t.kind == SqlToken::Kind::kQuoted;
}
bool is_word(const Token& t, std::string_view w) {
  return t.kind == SqlToken::Kind::kWord && t.text == w;
}
bool is_punct(const Token& t, char c) {
  return t.kind == SqlToken::Kind::kPunct && t.text.size() == 1 && t.text[0] == c;
}

StatementNameUse named(StatementNameUse::Kind kind, const Token& t) {
  return {kind, t.text, t.pos, t.len};
}

StatementNameUse classify(const std::vector<Token>& t) {
  using K = StatementNameUse::Kind;
  size_t n = t.size();
  if (is_word(t[0], "deallocate")) {
    size_t i = n > 2 && is_word(t[1], "prepare") ? 2 : 1;
    if (n != i + 1) return {};  // nothing, or more than one name: the server's to judge
    if (is_word(t[i], "all")) return {K::kDeallocateAll, {}, t[i].pos, t[i].len};
    if (is_name(t[i])) return named(K::kDeallocate, t[i]);
    return {};
  }
  size_t i = 0;
  if (is_word(t[0], "explain")) {
    i = 1;
    if (i < n && is_punct(t[i], '(')) {
      int depth = 0;
      for (; i < n; ++i) {
        if (is_punct(t[i], '(')) ++depth;
        if (is_punct(t[i], ')') && --depth == 0) break;
      }
      ++i;
    } else {
      while (i < n &&
             (is_word(t[i], "analyze") || is_word(t[i], "analyse") || is_word(t[i], "verbose")))
        ++i;
    }
  }
  if (i + 1 < n && is_word(t[i], "execute") && is_name(t[i + 1]) &&
      (i + 2 == n || is_punct(t[i + 2], '(')))
    return named(K::kExecute, t[i + 1]);
  return {};
}

}  // namespace

std::vector<StatementNameUse> statement_name_uses(std::string_view sql, bool complete) {
  std::vector<StatementNameUse> out;
  SqlLexer lex(sql);
  std::vector<Token> tokens;
  size_t end = 0;
  while (lex.next_statement(&tokens, &end)) {
    if (tokens.empty()) continue;
    StatementNameUse use = classify(tokens);
    bool cut = !complete && end == sql.size();
    // A statement cut short may go on differently: only an EXECUTE whose name (and what follows
    // it) is in the text is certain.
    if (cut &&
        (use.kind != StatementNameUse::Kind::kExecute || use.name_pos + use.name_len >= sql.size()))
      use = {};
    out.push_back(std::move(use));
  }
  return out;
}

std::string replace_spans(std::string_view s, std::span<const TextReplacement> replacements) {
  std::string out;
  out.reserve(s.size() + 16 * replacements.size());
  size_t at = 0;
  for (const auto& r : replacements) {
    out.append(s.substr(at, r.pos - at));
    out += r.text;
    at = r.pos + r.len;
  }
  out.append(s.substr(std::min(at, s.size())));
  return out;
}

}  // namespace helios::session
