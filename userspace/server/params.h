// Session parameters a client asked for (startup packet, later SETs the server reported), as
// an immutable, interned set: thousands of clients with the same parameters share one copy.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace helios::server {

using ParamPairs = std::vector<std::pair<std::string, std::string>>;  // sorted by name

class ParamSet {
 public:
  explicit ParamSet(ParamPairs p) : pairs_(std::move(p)) {}
  const ParamPairs& pairs() const { return pairs_; }
  const std::string* find(std::string_view name) const;

 private:
  ParamPairs pairs_;
};

using ParamSetPtr = std::shared_ptr<const ParamSet>;

class ParamInterner {
 public:
  // Returns the shared set equal to `pairs` (sorted here), creating it if needed.
  ParamSetPtr intern(ParamPairs pairs);
  // The set with `name` set to `value` (or removed when value is null).
  ParamSetPtr with(const ParamSetPtr& base, std::string_view name, const std::string* value);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::weak_ptr<const ParamSet>> sets_;
};

// Parameter names are stored lower-cased (PostgreSQL's GUC names are case-insensitive).
std::string lower(std::string_view s);

// Names (lower-case) whose value the server reports in ParameterStatus and that a client may
// change; the proxy carries them from backend to backend (GUC_REPORT parameters in PostgreSQL 15).
bool is_tracked_parameter(std::string_view name);

}  // namespace helios::server
