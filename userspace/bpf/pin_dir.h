// Pin directories: /sys/fs/bpf/helios/<instance>/ holds one instance's maps (and the XDP
// program), so heliosctl and the proxy find the same state and operators can
// `bpftool map dump pinned /sys/fs/bpf/helios/<instance>/tenant_counters`.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace helios::bpf {

class PinDir {
 public:
  // Validates the instance name ([A-Za-z0-9_.-], 1..64, not "." or "..").
  static Result<PinDir> for_instance(const std::string& instance,
                                     const std::string& root = "/sys/fs/bpf/helios");

  const std::string& path() const { return path_; }
  const std::string& instance() const { return instance_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // Creates root and instance directories; fails with a missing-feature error if the root is
  // not on a bpffs mount.
  Status create() const;
  bool exists() const;
  bool has(const std::string& name) const;
  // Unlinks the named pins, then removes the directory (and the root) if nothing else is pinned
  // there: the edge guard and the VIP steering of one instance share the directory.
  Status remove(const std::vector<std::string>& names) const;

 private:
  PinDir(std::string root, std::string instance, std::string path)
      : root_(std::move(root)), instance_(std::move(instance)), path_(std::move(path)) {}
  std::string root_, instance_, path_;
};

// True if `path` (or its nearest existing parent) is on a bpffs mount.
bool on_bpffs(const std::string& path);

}  // namespace helios::bpf
