// Where SQL names a prepared statement: DEALLOCATE [PREPARE] name | ALL, and EXECUTE name
// [(args)] (also behind EXPLAIN). In transaction pooling a client's protocol-prepared statements
// live on backends under the proxy's names (hp_<n>), so SQL that names them must be rewritten to
// those names, or answered by the proxy. No I/O; pure text analysis, tested alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace helios::session {

struct StatementNameUse {
  enum class Kind : uint8_t {
    kOther,          // any other statement (or one this module cannot read)
    kDeallocate,     // DEALLOCATE [PREPARE] name
    kDeallocateAll,  // DEALLOCATE [PREPARE] ALL
    kExecute,        // [EXPLAIN ...] EXECUTE name [(args)]
  };
  Kind kind = Kind::kOther;
  std::string name;     // as PostgreSQL resolves it: unquoted lower-cased, quoted as written
  size_t name_pos = 0;  // where the name is written in the text (quotes included)
  size_t name_len = 0;
};

// One entry per non-empty statement of `sql` (a simple Query's text or a Parse's query, without
// the terminating NUL), in order. Statements are split at ';' outside quotes, dollar quotes and
// comments. With `complete` false (the text was cut), a name that reaches the end of the text
// may be cut too: that statement is reported as kOther.
std::vector<StatementNameUse> statement_name_uses(std::string_view sql, bool complete);

struct TextReplacement {
  size_t pos;
  size_t len;
  std::string text;
};
// `s` with each [pos, pos+len) replaced by its text; replacements sorted by pos, not overlapping.
std::string replace_spans(std::string_view s, std::span<const TextReplacement> replacements);

}  // namespace helios::session
