// Typed views over BPF maps: lookup / update / erase / iterate with the ABI structs from
// include/helios/bpf_abi.h, and per-CPU maps read as one value per possible CPU or summed.
// A view does not own the map fd (the skeleton or a PinnedMap does); it checks on creation
// that the map's key and value sizes match the C++ types, so a stale pin from an older build
// is an error, not garbage.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bpf/bpf_error.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace helios::bpf {

struct MapInfo {
  uint32_t type = 0;
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
  std::string name;
};

Result<MapInfo> map_info(int fd);
// Number of possible CPUs (per-CPU maps hold one value per possible CPU).
int possible_cpus();
// Opens a pinned map; the fd is owned by the caller.
Result<UniqueFd> open_pinned_map(const std::string& path);

template <typename K, typename V>
class MapView {
 public:
  // From a loaded skeleton map.
  static Result<MapView> of(const bpf_map* map) {
    if (bpf_map__key_size(map) != sizeof(K) || bpf_map__value_size(map) != sizeof(V))
      return Error::invalid(std::string("bpf: map ") + bpf_map__name(map) + " has other sizes");
    return MapView(bpf_map__fd(map), bpf_map__name(map));
  }
  // From an fd (e.g. a pinned map).
  static Result<MapView> of_fd(int fd) {
    auto info = map_info(fd);
    if (!info) return info.error();
    if (info->key_size != sizeof(K) || info->value_size != sizeof(V))
      return Error::invalid("bpf: map " + info->name + " key/value sizes " +
                            std::to_string(info->key_size) + "/" +
                            std::to_string(info->value_size) + " differ from this build's ABI");
    return MapView(fd, info->name);
  }

  Result<std::optional<V>> lookup(const K& key, uint64_t flags = 0) const {
    V v{};
    if (bpf_map_lookup_elem_flags(fd_, &key, &v, flags) == 0) return std::optional<V>(v);
    if (errno == ENOENT) return std::optional<V>();
    return Error::from_errno("bpf: lookup in " + name_);
  }
  Status update(const K& key, const V& value, uint64_t flags = BPF_ANY) {
    if (bpf_map_update_elem(fd_, &key, &value, flags) != 0)
      return Error::from_errno("bpf: update in " + name_);
    return {};
  }
  // Erasing a missing key is not an error.
  Status erase(const K& key) {
    if (bpf_map_delete_elem(fd_, &key) != 0 && errno != ENOENT)
      return Error::from_errno("bpf: delete in " + name_);
    return {};
  }
  // Every key currently in the map (hash / LPM; for arrays, every index).
  Result<std::vector<K>> keys() const {
    std::vector<K> out;
    K cur{}, next{};
    const K* prev = nullptr;
    while (bpf_map_get_next_key(fd_, prev, &next) == 0) {
      out.push_back(next);
      cur = next;
      prev = &cur;
    }
    if (errno != ENOENT) return Error::from_errno("bpf: iterating " + name_);
    return out;
  }
  int fd() const { return fd_; }
  const std::string& name() const { return name_; }

 private:
  MapView(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  int fd_;
  std::string name_;
};

// Per-CPU maps: the kernel reads and writes one V per possible CPU, each slot 8-byte aligned.
template <typename K, typename V>
class PerCpuMapView {
  static_assert(sizeof(V) % 8 == 0, "per-CPU values are 8-byte aligned slots");

 public:
  static Result<PerCpuMapView> of(const bpf_map* map) {
    if (bpf_map__key_size(map) != sizeof(K) || bpf_map__value_size(map) != sizeof(V))
      return Error::invalid(std::string("bpf: map ") + bpf_map__name(map) + " has other sizes");
    return PerCpuMapView(bpf_map__fd(map), bpf_map__name(map));
  }
  static Result<PerCpuMapView> of_fd(int fd) {
    auto info = map_info(fd);
    if (!info) return info.error();
    if (info->key_size != sizeof(K) || info->value_size != sizeof(V))
      return Error::invalid("bpf: map " + info->name + " sizes differ from this build's ABI");
    return PerCpuMapView(fd, info->name);
  }

  // One value per possible CPU.
  Result<std::vector<V>> lookup_all(const K& key) const {
    std::vector<V> vals(ncpus_);
    if (bpf_map_lookup_elem(fd_, &key, vals.data()) != 0)
      return Error::from_errno("bpf: lookup in " + name_);
    return vals;
  }
  // Aggregated over CPUs with `add(total, one_cpu)`.
  Result<V> sum(const K& key, const std::function<void(V&, const V&)>& add) const {
    auto all = lookup_all(key);
    if (!all) return all.error();
    V total{};
    for (const V& v : *all) add(total, v);
    return total;
  }
  // Sets every CPU's slot to `value` (used to zero a reassigned slot).
  Status update_all(const K& key, const V& value) {
    std::vector<V> vals(ncpus_, value);
    if (bpf_map_update_elem(fd_, &key, vals.data(), BPF_ANY) != 0)
      return Error::from_errno("bpf: update in " + name_);
    return {};
  }
  int fd() const { return fd_; }

 private:
  PerCpuMapView(int fd, std::string name)
      : fd_(fd), name_(std::move(name)), ncpus_(possible_cpus()) {}
  int fd_;
  std::string name_;
  int ncpus_;
};

}  // namespace helios::bpf
