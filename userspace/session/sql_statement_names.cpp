#include "session/sql_statement_names.h"

#include <cctype>

namespace helios::session {
namespace {

struct Token {
  enum class Kind : uint8_t { kWord, kQuoted, kPunct, kOther };
  Kind kind;
  std::string text;  // kWord: lower-cased; kQuoted: unescaped; kPunct: the character
  size_t pos;
  size_t len;
};

bool ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool ident_char(char c) {
  return ident_start(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$';
}
char lower_ch(char c) {
  return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
}

// Splits `s` into statements of tokens. Literals and comments are skipped over exactly enough
// to find the ';' that end statements.
class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  // The next statement's tokens (at most kMaxTokens kept); false at the end of the text.
  bool next_statement(std::vector<Token>& out, size_t* end) {
    out.clear();
    if (i_ > s_.size() || (i_ == s_.size() && done_)) return false;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == ';') {
        *end = i_++;
        return true;
      }
      Token t{Token::Kind::kOther, {}, i_, 0};
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i_;
        continue;
      } else if (c == '-' && peek(1) == '-') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
        continue;
      } else if (c == '/' && peek(1) == '*') {
        skip_block_comment();
        continue;
      } else if (c == '\'') {
        skip_string(false);
      } else if (c == '"') {
        t.kind = Token::Kind::kQuoted;
        t.text = quoted();
      } else if (c == '$' && dollar_quote()) {
      } else if (ident_start(c)) {
        size_t j = i_;
        while (j < s_.size() && ident_char(s_[j])) t.text += lower_ch(s_[j++]);
        i_ = j;
        if (i_ < s_.size() && s_[i_] == '\'') {  // E'...', B'...', X'...', N'...'
          skip_string(t.text == "e");
          t.text.clear();
        } else {
          t.kind = Token::Kind::kWord;
        }
      } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '$') {
        ++i_;
        while (i_ < s_.size() &&
               (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' || s_[i_] == '_'))
          ++i_;
      } else {
        t.kind = Token::Kind::kPunct;
        t.text = std::string(1, c);
        ++i_;
      }
      t.len = i_ - t.pos;
      if (out.size() < kMaxTokens) out.push_back(std::move(t));
    }
    done_ = true;
    *end = s_.size();
    return true;
  }

  static constexpr size_t kMaxTokens = 64;

 private:
  char peek(size_t k) const { return i_ + k < s_.size() ? s_[i_ + k] : '\0'; }

  void skip_block_comment() {  // /* ... */, nested as PostgreSQL allows
    int depth = 0;
    while (i_ < s_.size()) {
      if (s_[i_] == '/' && peek(1) == '*') {
        ++depth;
        i_ += 2;
      } else if (s_[i_] == '*' && peek(1) == '/') {
        i_ += 2;
        if (--depth == 0) return;
      } else {
        ++i_;
      }
    }
  }

  void skip_string(bool backslash_escapes) {  // at the opening quote
    for (++i_; i_ < s_.size(); ++i_) {
      if (backslash_escapes && s_[i_] == '\\') {
        ++i_;
      } else if (s_[i_] == '\'') {
        if (peek(1) == '\'') {
          ++i_;
          continue;
        }
        ++i_;
        return;
      }
    }
  }

  std::string quoted() {  // at the opening double quote
    std::string t;
    for (++i_; i_ < s_.size(); ++i_) {
      if (s_[i_] == '"') {
        if (peek(1) == '"') {
          t += '"';
          ++i_;
          continue;
        }
        ++i_;
        return t;
      }
      t += s_[i_];
    }
    return t;
  }

  bool dollar_quote() {  // $tag$ ... $tag$; false if `$` starts no dollar quote ($1)
    size_t j = i_ + 1;
    while (j < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[j])) || s_[j] == '_')) {
      if (j == i_ + 1 && std::isdigit(static_cast<unsigned char>(s_[j]))) return false;
      ++j;
    }
    if (j >= s_.size() || s_[j] != '$') return false;
    std::string_view tag = s_.substr(i_, j - i_ + 1);
    size_t close = s_.find(tag, j + 1);
    i_ = close == std::string_view::npos ? s_.size() : close + tag.size();
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
  bool done_ = false;
};

bool is_name(const Token& t) {
  return t.kind == Token::Kind::kWord || t.kind == Token::Kind::kQuoted;
}
bool is_word(const Token& t, std::string_view w) {
  return t.kind == Token::Kind::kWord && t.text == w;
}
bool is_punct(const Token& t, char c) {
  return t.kind == Token::Kind::kPunct && t.text.size() == 1 && t.text[0] == c;
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
  Lexer lex(sql);
  std::vector<Token> tokens;
  size_t end = 0;
  while (lex.next_statement(tokens, &end)) {
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
