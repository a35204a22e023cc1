#include "session/prepared_registry.h"

namespace helios::session {

PreparedPtr PreparedRegistry::intern(std::string_view tail) {
  std::lock_guard lock(mu_);
  auto& slot = by_tail_[std::string(tail)];
  if (auto p = slot.lock()) return p;
  auto made = std::make_shared<PreparedStatement>();
  made->id = next_id_++;
  made->server_name = "hp_" + std::to_string(made->id);
  made->tail = std::string(tail);
  made->effects = inspect_sql(std::string_view(made->tail.c_str()), /*complete=*/true);
  made->may_change_session =
      may_change_session(std::string_view(made->tail.c_str()), /*complete=*/true);
  slot = made;
  if (by_tail_.size() > 4096 && by_tail_.size() % 4096 == 0)
    std::erase_if(by_tail_, [](const auto& kv) { return kv.second.expired(); });
  return made;
}

size_t PreparedRegistry::size() const {
  std::lock_guard lock(mu_);
  return by_tail_.size();
}

}  // namespace helios::session
