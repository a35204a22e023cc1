#include "session/prepared_registry.h"

namespace helios::session {

PreparedRegistry::~PreparedRegistry() {
  // Statements still referenced here would call release() on a dead registry; none should be.
  std::lock_guard lock(mu_);
  by_tail_.clear();
}

PreparedPtr PreparedRegistry::intern(std::string_view tail, uint64_t limit_bytes) {
  std::lock_guard lock(mu_);
  if (auto it = by_tail_.find(tail); it != by_tail_.end()) {
    if (auto p = it->second.lock()) return p;
    // Its last holder is releasing it right now: that release no longer finds its own key.
    by_tail_.erase(it);
  }
  if (limit_bytes > 0 && bytes_.load(std::memory_order_relaxed) + tail.size() > limit_bytes)
    return nullptr;
  auto* made = new PreparedStatement();
  made->id = next_id_++;
  made->server_name = server_statement_name(made->id);
  made->tail = std::string(tail);
  made->effects = inspect_sql(std::string_view(made->tail.c_str()), /*complete=*/true);
  made->may_change_session =
      may_change_session(std::string_view(made->tail.c_str()), /*complete=*/true);
  PreparedPtr p(made, Release{this});
  by_tail_.emplace(std::string_view(made->tail), p);
  bytes_.fetch_add(made->tail.size(), std::memory_order_relaxed);
  return p;
}

void PreparedRegistry::release(PreparedStatement* s) {
  {
    std::lock_guard lock(mu_);
    auto it = by_tail_.find(std::string_view(s->tail));
    // Erase only our own entry: a newer statement of the same text may have replaced it.
    if (it != by_tail_.end() && it->first.data() == s->tail.data()) by_tail_.erase(it);
  }
  bytes_.fetch_sub(s->tail.size(), std::memory_order_relaxed);
  delete s;
}

size_t PreparedRegistry::size() const {
  std::lock_guard lock(mu_);
  return by_tail_.size();
}

}  // namespace helios::session
