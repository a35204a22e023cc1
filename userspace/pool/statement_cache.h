// The prepared statements a backend holds on the proxy's behalf (server names hp_<id>), least
// recently used first out when the cap is reached: the caller closes the evicted one.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <unordered_map>

namespace helios::pool {

class StatementCache {
 public:
  bool contains(uint32_t id) const { return where_.count(id) != 0; }
  void touch(uint32_t id) {
    auto it = where_.find(id);
    if (it != where_.end()) order_.splice(order_.begin(), order_, it->second);
  }
  // Records id; returns the statement evicted to stay within `cap`, if any.
  std::optional<uint32_t> insert(uint32_t id, size_t cap) {
    if (contains(id)) {
      touch(id);
      return std::nullopt;
    }
    order_.push_front(id);
    where_[id] = order_.begin();
    if (cap > 0 && order_.size() > cap) {
      uint32_t victim = order_.back();
      order_.pop_back();
      where_.erase(victim);
      return victim;
    }
    return std::nullopt;
  }
  void erase(uint32_t id) {
    auto it = where_.find(id);
    if (it == where_.end()) return;
    order_.erase(it->second);
    where_.erase(it);
  }
  void clear() {
    order_.clear();
    where_.clear();
  }
  size_t size() const { return order_.size(); }

 private:
  std::list<uint32_t> order_;  // most recent first
  std::unordered_map<uint32_t, std::list<uint32_t>::iterator> where_;
};

}  // namespace helios::pool
