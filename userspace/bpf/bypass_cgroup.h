// A cgroup v2 directory created for a purpose (a dedicated cgroup the proxy runs in, so the
// bypass watches only the pod/sidecar it shares; or a test's scratch cgroup), removed on
// destruction after moving any process still in it back to the parent.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"

namespace helios::bpf {

class CgroupDir {
 public:
  CgroupDir(CgroupDir&& o) noexcept;
  CgroupDir& operator=(CgroupDir&& o) noexcept;
  ~CgroupDir();

  // Creates parent/name (parent must be a cgroup v2 directory). Fails if it exists.
  static Result<CgroupDir> create(const std::string& parent, const std::string& name);

  // Moves process `pid` (0 = this process, all its threads) into this cgroup / back to parent.
  Status enter(pid_t pid = 0) const;
  Status leave(pid_t pid = 0) const;

  const std::string& path() const { return path_; }
  const std::string& parent() const { return parent_; }

 private:
  CgroupDir(std::string parent, std::string path)
      : parent_(std::move(parent)), path_(std::move(path)) {}
  void remove();
  std::string parent_, path_;
};

}  // namespace helios::bpf
