// Named prepared statements of clients in transaction pooling, interned process-wide by their
// content (query text + parameter types): two clients preparing the same query share one
// server-side name, "hp_<id>", which can never collide with another statement. An entry lives
// exactly as long as some client (or a queued message) still holds the statement: the last
// reference going away removes it from the registry and frees its text. The texts held are
// counted (bytes()) and bounded (intern() refuses past the limit).
#pragma once

#include <atomic>
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

// The server-side name of statement `id`: "hp_<id>", which no client statement name can meet.
inline std::string server_statement_name(uint32_t id) {
  return "hp_" + std::to_string(id);
}

class PreparedRegistry {
 public:
  PreparedRegistry() = default;
  PreparedRegistry(const PreparedRegistry&) = delete;
  PreparedRegistry& operator=(const PreparedRegistry&) = delete;
  ~PreparedRegistry();  // every statement must have been released (clients are gone by then)

  // The statement with this Parse tail: the one already held by someone, or a new one. Null
  // when a new one would take the texts held past `limit_bytes` (0 = no limit).
  PreparedPtr intern(std::string_view tail, uint64_t limit_bytes = 0);
  size_t size() const;
  // Bytes of statement text (Parse tails) held now.
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  struct Release {
    PreparedRegistry* registry;
    void operator()(PreparedStatement* s) const { registry->release(s); }
  };
  void release(PreparedStatement* s);

  mutable std::mutex mu_;
  // Keyed by a view of the statement's own tail: an entry is erased before its statement is freed.
  std::unordered_map<std::string_view, std::weak_ptr<const PreparedStatement>> by_tail_;
  uint32_t next_id_ = 1;
  std::atomic<uint64_t> bytes_{0};
};

}  // namespace helios::session
