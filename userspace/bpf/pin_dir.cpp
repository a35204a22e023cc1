#include "bpf/pin_dir.h"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>

#include "bpf/bpf_error.h"

namespace helios::bpf {

namespace {
bool valid_instance(const std::string& s) {
  if (s.empty() || s.size() > 64 || s == "." || s == "..") return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string parent_of(const std::string& p) {
  auto pos = p.find_last_of('/');
  if (pos == std::string::npos || pos == 0) return "/";
  return p.substr(0, pos);
}
}  // namespace

bool on_bpffs(const std::string& path) {
  std::string p = path;
  for (;;) {
    struct statfs st {};
    if (statfs(p.c_str(), &st) == 0) return st.f_type == BPF_FS_MAGIC;
    if (p == "/") return false;
    p = parent_of(p);
  }
}

Result<PinDir> PinDir::for_instance(const std::string& instance, const std::string& root) {
  if (!valid_instance(instance))
    return Error::invalid("bpf: instance name '" + instance +
                          "' must be 1-64 characters of [A-Za-z0-9_.-]");
  return PinDir(root, instance, root + "/" + instance);
}

Status PinDir::create() const {
  if (!on_bpffs(parent_of(root_)) && !on_bpffs(root_))
    return missing_feature("bpffs", parent_of(root_) +
                                        " is not a bpf filesystem; mount it with "
                                        "`mount -t bpf bpf /sys/fs/bpf`");
  for (const std::string& d : {root_, path_}) {
    if (mkdir(d.c_str(), 0700) != 0 && errno != EEXIST)
      return Error::from_errno("bpf: creating pin directory " + d);
  }
  return {};
}

bool PinDir::exists() const {
  struct stat st {};
  return stat(path_.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool PinDir::has(const std::string& name) const {
  struct stat st {};
  return stat(file(name).c_str(), &st) == 0;
}

Status PinDir::remove(const std::vector<std::string>& names) const {
  Status st;
  for (const auto& n : names) {
    if (unlink(file(n).c_str()) != 0 && errno != ENOENT && st.ok())
      st = Error::from_errno("bpf: unpinning " + file(n));
  }
  // Both only succeed when empty: another user's pins keep the directory.
  rmdir(path_.c_str());
  rmdir(root_.c_str());
  return st;
}

}  // namespace helios::bpf
