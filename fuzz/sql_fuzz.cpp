// The SQL text inspectors on arbitrary text: what a statement does to session state
// (sql_inspect) and where it names a prepared statement (sql_statement_names). Never crash; a
// name's position lies inside the text; a text cut short never claims more than the whole text.
#include <cstdint>
#include <string>
#include <string_view>

#include "session/sql_inspect.h"
#include "session/sql_statement_names.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  bool complete = data[0] & 1;
  std::string sql(reinterpret_cast<const char*>(data) + 1, size - 1);
  (void)helios::session::inspect_sql(sql, complete);
  for (const auto& use : helios::session::statement_name_uses(sql, complete))
    if (use.name_pos > sql.size() || use.name_len > sql.size() - use.name_pos) __builtin_trap();
  return 0;
}
