// Named prepared statements of clients in transaction pooling, interned process-wide by their
// content (query text + parameter types): two clients preparing the same query share one
// server-side name, "hp_<id>", which can never collide with another statement. Entries live as
// long as some client still has the statement.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "session/sql_inspect.h"

namespace helios::session {

struct PreparedStatement {
  uint32_t id = 0;
  std::string server_name;  // "hp_<id>"
  std::string tail;         // Parse body after the statement name: query\0 int16 n, types
  std::vector<SessionEffect> effects;  // what each execution does to the session (usually none)
  bool may_change_session = false;     // its text hides session effects (sql_inspect.h)
};
using PreparedPtr = std::shared_ptr<const PreparedStatement>;

class PreparedRegistry {
 public:
  PreparedPtr intern(std::string_view tail);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::weak_ptr<const PreparedStatement>> by_tail_;
  uint32_t next_id_ = 1;
};

}  // namespace helios::session
