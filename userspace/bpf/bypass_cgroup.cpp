#include "bpf/bypass_cgroup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "bpf/feature_probe.h"
#include "common/log.h"

namespace helios::bpf {

namespace {
Status write_pid(const std::string& dir, pid_t pid) {
  std::ofstream f(dir + "/cgroup.procs");
  if (!f) return Error::from_errno("cgroup: opening " + dir + "/cgroup.procs");
  f << (pid == 0 ? getpid() : pid) << "\n";
  f.flush();
  if (!f) return Error::from_errno("cgroup: moving pid into " + dir);
  return {};
}
}  // namespace

CgroupDir::CgroupDir(CgroupDir&& o) noexcept
    : parent_(std::move(o.parent_)), path_(std::exchange(o.path_, std::string())) {}
CgroupDir& CgroupDir::operator=(CgroupDir&& o) noexcept {
  if (this != &o) {
    remove();
    parent_ = std::move(o.parent_);
    path_ = std::exchange(o.path_, std::string());
  }
  return *this;
}
CgroupDir::~CgroupDir() {
  remove();
}

Result<CgroupDir> CgroupDir::create(const std::string& parent, const std::string& name) {
  if (!is_cgroup2_dir(parent)) return Error::invalid("cgroup: " + parent + " is not cgroup v2");
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    return Error::invalid("cgroup: bad name '" + name + "'");
  std::string path = parent + "/" + name;
  if (mkdir(path.c_str(), 0755) != 0) return Error::from_errno("cgroup: creating " + path);
  return CgroupDir(parent, path);
}

Status CgroupDir::enter(pid_t pid) const {
  return write_pid(path_, pid);
}
Status CgroupDir::leave(pid_t pid) const {
  return write_pid(parent_, pid);
}

void CgroupDir::remove() {
  if (path_.empty()) return;
  // Anything still inside goes back to the parent, else rmdir fails with EBUSY.
  std::ifstream procs(path_ + "/cgroup.procs");
  std::vector<pid_t> pids;
  for (pid_t p; procs >> p;) pids.push_back(p);
  for (pid_t p : pids) (void)write_pid(parent_, p);
  if (rmdir(path_.c_str()) != 0) log::warn("cgroup: removing {}: {}", path_, strerror(errno));
  path_.clear();
}

}  // namespace helios::bpf
