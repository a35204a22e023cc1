// The fields of an ErrorResponse or NoticeResponse ('E' / 'N'), written by the proxy and parsed
// from PostgreSQL. Field type bytes are those of the "Error and Notice Message Fields" page.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace helios::pg {

namespace field {
constexpr char kSeverity = 'S';              // localized severity
constexpr char kSeverityNonLocalized = 'V';  // always English (PostgreSQL 9.6+)
constexpr char kCode = 'C';                  // SQLSTATE
constexpr char kMessage = 'M';
constexpr char kDetail = 'D';
constexpr char kHint = 'H';
constexpr char kPosition = 'P';
constexpr char kInternalPosition = 'p';
constexpr char kInternalQuery = 'q';
constexpr char kWhere = 'W';
constexpr char kSchema = 's';
constexpr char kTable = 't';
constexpr char kColumn = 'c';
constexpr char kDataType = 'd';
constexpr char kConstraint = 'n';
constexpr char kFile = 'F';
constexpr char kLine = 'L';
constexpr char kRoutine = 'R';
}  // namespace field

struct ErrorFields {
  std::string severity;               // S, e.g. "ERROR", "FATAL"
  std::string severity_nonlocalized;  // V; empty when the server did not send it
  std::string sqlstate;               // C
  std::string message;                // M
  std::string detail;                 // D (optional)
  std::string hint;                   // H (optional)
  std::string position;               // P (optional)
  std::string where;                  // W (optional)
  // Every other field, in arrival order (schema, table, file, line, routine, ...).
  std::vector<std::pair<char, std::string>> other;

  // The severity to act on: V when present (not translated), S otherwise.
  const std::string& effective_severity() const {
    return severity_nonlocalized.empty() ? severity : severity_nonlocalized;
  }
  bool is_fatal() const {
    const std::string& s = effective_severity();
    return s == "FATAL" || s == "PANIC";
  }
  // Value of a field by type byte from `other` (empty if absent).
  std::string_view get_other(char type) const {
    for (const auto& [t, v] : other) {
      if (t == type) return v;
    }
    return {};
  }
};

}  // namespace helios::pg
