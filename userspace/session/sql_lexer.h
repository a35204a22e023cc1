// The one SQL lexer of the session layer: splits a text into statements at the ';' outside
// string literals (standard and E'' with backslash escapes), quoted identifiers, dollar quotes
// and (nested) comments, and gives each statement's first tokens. Used to find statement
// boundaries (sql_inspect) and statement names (sql_statement_names). No allocation per token
// beyond the tokens kept.
#pragma once

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace helios::session {

struct SqlToken {
  enum class Kind : uint8_t { kWord, kQuoted, kPunct, kOther };
  Kind kind;
  std::string text;  // kWord: lower-cased; kQuoted: unescaped; kPunct: the character
  size_t pos;
  size_t len;
};

inline bool sql_ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
inline bool sql_ident_char(char c) {
  return sql_ident_start(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$';
}
inline char sql_lower(char c) {
  return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
}

// Splits `s` into statements of tokens. Literals and comments are skipped over exactly enough
// to find the ';' that end statements.
class SqlLexer {
 public:
  explicit SqlLexer(std::string_view s) : s_(s) {}

  // The next statement's tokens (at most kMaxTokens kept; none when `out` is null) and in *end
  // the offset of the ';' that ends it, or the text's size for the last one; false at the end.
  bool next_statement(std::vector<SqlToken>* out, size_t* end) {
    if (out) out->clear();
    if (i_ > s_.size() || (i_ == s_.size() && done_)) return false;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == ';') {
        *end = i_++;
        return true;
      }
      SqlToken t{SqlToken::Kind::kOther, {}, i_, 0};
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
        t.kind = SqlToken::Kind::kQuoted;
        t.text = quoted();
      } else if (c == '$' && dollar_quote()) {
      } else if (sql_ident_start(c)) {
        const bool keep = out && out->size() < kMaxTokens;  // text only for tokens kept
        size_t j = i_;
        while (j < s_.size() && sql_ident_char(s_[j])) {
          if (keep) t.text += sql_lower(s_[j]);
          ++j;
        }
        const bool just_e = j - i_ == 1 && sql_lower(s_[i_]) == 'e';
        i_ = j;
        if (i_ < s_.size() && s_[i_] == '\'') {  // E'...', B'...', X'...', N'...'
          skip_string(just_e);
          t.text.clear();
        } else {
          t.kind = SqlToken::Kind::kWord;
        }
      } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '$') {
        ++i_;
        while (i_ < s_.size() &&
               (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' || s_[i_] == '_'))
          ++i_;
      } else {
        t.kind = SqlToken::Kind::kPunct;
        t.text = std::string(1, c);
        ++i_;
      }
      t.len = i_ - t.pos;
      if (out && out->size() < kMaxTokens) out->push_back(std::move(t));
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

}  // namespace helios::session
