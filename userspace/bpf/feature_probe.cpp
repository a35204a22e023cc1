#include "bpf/feature_probe.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bpf/bpf_error.h"
#include "bpf/pin_dir.h"
#include "common/unique_fd.h"

namespace helios::bpf {

namespace {

// A trial array map: proves bpf(2) works with our privileges.
bool trial_map(std::string* why) {
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "helios_probe", 4, 8, 1, nullptr);
  if (fd < 0) {
    *why = std::strerror(errno);
    return false;
  }
  close(fd);
  return true;
}

// An array map whose value is { struct bpf_spin_lock; __u32 } described by BTF.
bool probe_spin_lock() {
  struct btf* btf = btf__new_empty();
  if (!btf) return false;
  int u32_id = btf__add_int(btf, "unsigned int", 4, 0);
  int lock_id = btf__add_struct(btf, "bpf_spin_lock", 4);
  btf__add_field(btf, "val", u32_id, 0, 0);
  int val_id = btf__add_struct(btf, "probe_val", 8);
  btf__add_field(btf, "lock", lock_id, 0, 0);
  btf__add_field(btf, "v", u32_id, 32, 0);
  bool ok = false;
  if (u32_id > 0 && lock_id > 0 && val_id > 0 && btf__load_into_kernel(btf) == 0) {
    LIBBPF_OPTS(bpf_map_create_opts, opts, .btf_fd = (__u32)btf__fd(btf),
                .btf_key_type_id = (__u32)u32_id, .btf_value_type_id = (__u32)val_id);
    int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "helios_probe_l", 4, 8, 1, &opts);
    if (fd >= 0) {
      ok = true;
      close(fd);
    }
  }
  btf__free(btf);
  return ok;
}

const char* yn(bool b) {
  return b ? "yes" : "no";
}

}  // namespace

bool is_cgroup2_dir(const std::string& path) {
  struct statfs st {};
  return statfs(path.c_str(), &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

std::string find_cgroup2_mount() {
  if (is_cgroup2_dir(kDefaultCgroup2)) return kDefaultCgroup2;
  if (is_cgroup2_dir("/sys/fs/cgroup")) return "/sys/fs/cgroup";
  return "";
}

KernelFeatures probe_kernel_features() {
  KernelFeatures f;
  f.btf_vmlinux = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
  f.bpffs = on_bpffs("/sys/fs/bpf");
  f.bpf_syscall = trial_map(&f.bpf_syscall_error);
  if (!f.bpf_syscall) return f;
  f.xdp = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_XDP, nullptr) == 1;
  f.sk_lookup = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_LOOKUP, nullptr) == 1;
  f.lpm_trie = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_LPM_TRIE, nullptr) == 1;
  f.percpu_array = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_PERCPU_ARRAY, nullptr) == 1;
  f.sockmap = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKMAP, nullptr) == 1;
  f.spin_lock = probe_spin_lock();
  f.sockhash = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKHASH, nullptr) == 1;
  f.sock_ops = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SOCK_OPS, nullptr) == 1;
  f.sk_msg = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_MSG, nullptr) == 1;
  f.sk_skb = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_SKB, nullptr) == 1;
  f.ringbuf = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr) == 1;
  f.cgroup2 = !find_cgroup2_mount().empty();
  return f;
}

namespace {
Status require_syscall(const KernelFeatures& f) {
  if (f.bpf_syscall) return {};
  if (f.bpf_syscall_error == std::strerror(EPERM))
    return missing_privilege("CAP_BPF and CAP_NET_ADMIN (or root)",
                             "bpf(BPF_MAP_CREATE) was refused: " + f.bpf_syscall_error);
  return missing_feature("bpf syscall", "bpf(BPF_MAP_CREATE) failed: " + f.bpf_syscall_error);
}
}  // namespace

Status require_edge_guard(const KernelFeatures& f) {
  if (auto s = require_syscall(f); !s) return s;
  if (!f.btf_vmlinux) return missing_feature("BTF", "/sys/kernel/btf/vmlinux is absent");
  if (!f.bpffs) return missing_feature("bpffs", "/sys/fs/bpf is not a bpf filesystem");
  if (!f.xdp) return missing_feature("XDP programs", "BPF_PROG_TYPE_XDP refused");
  if (!f.lpm_trie) return missing_feature("LPM trie maps", "BPF_MAP_TYPE_LPM_TRIE refused");
  if (!f.percpu_array)
    return missing_feature("per-CPU arrays", "BPF_MAP_TYPE_PERCPU_ARRAY refused");
  if (!f.spin_lock)
    return missing_feature("bpf_spin_lock", "array value with a BTF spin lock refused");
  return {};
}

Status require_vip_steering(const KernelFeatures& f) {
  if (auto s = require_syscall(f); !s) return s;
  if (!f.btf_vmlinux) return missing_feature("BTF", "/sys/kernel/btf/vmlinux is absent");
  if (!f.sk_lookup) return missing_feature("sk_lookup programs", "BPF_PROG_TYPE_SK_LOOKUP refused");
  if (!f.sockmap) return missing_feature("sockmap", "BPF_MAP_TYPE_SOCKMAP refused");
  return {};
}

Status require_bypass(const KernelFeatures& f) {
  if (auto s = require_syscall(f); !s) return s;
  if (!f.sockhash) return missing_feature("sockhash", "BPF_MAP_TYPE_SOCKHASH refused");
  if (!f.sock_ops) return missing_feature("sockops programs", "BPF_PROG_TYPE_SOCK_OPS refused");
  if (!f.sk_msg) return missing_feature("sk_msg programs", "BPF_PROG_TYPE_SK_MSG refused");
  if (!f.percpu_array)
    return missing_feature("per-CPU arrays", "BPF_MAP_TYPE_PERCPU_ARRAY refused");
  if (!f.cgroup2)
    return missing_feature(
        "cgroup v2", std::string("no cgroup2 mount at ") + kDefaultCgroup2 + " or /sys/fs/cgroup");
  return {};
}

Status require_splice(const KernelFeatures& f) {
  if (auto s = require_syscall(f); !s) return s;
  if (!f.btf_vmlinux) return missing_feature("BTF", "/sys/kernel/btf/vmlinux is absent");
  if (!f.sockhash) return missing_feature("sockhash", "BPF_MAP_TYPE_SOCKHASH refused");
  if (!f.sk_skb) return missing_feature("sk_skb programs", "BPF_PROG_TYPE_SK_SKB refused");
  if (!f.ringbuf) return missing_feature("ring buffer maps", "BPF_MAP_TYPE_RINGBUF refused");
  if (!f.percpu_array)
    return missing_feature("per-CPU arrays", "BPF_MAP_TYPE_PERCPU_ARRAY refused");
  if (!f.spin_lock)
    return missing_feature("bpf_spin_lock", "hash value with a BTF spin lock refused");
  return {};
}

std::string describe(const KernelFeatures& f) {
  std::string s = std::string("bpf_syscall=") + yn(f.bpf_syscall);
  if (!f.bpf_syscall) s += " (" + f.bpf_syscall_error + ")";
  s += std::string(" btf=") + yn(f.btf_vmlinux) + " bpffs=" + yn(f.bpffs) + " xdp=" + yn(f.xdp) +
       " sk_lookup=" + yn(f.sk_lookup) + " lpm_trie=" + yn(f.lpm_trie) +
       " percpu_array=" + yn(f.percpu_array) + " sockmap=" + yn(f.sockmap) +
       " spin_lock=" + yn(f.spin_lock) + " sockhash=" + yn(f.sockhash) +
       " sock_ops=" + yn(f.sock_ops) + " sk_msg=" + yn(f.sk_msg) + " sk_skb=" + yn(f.sk_skb) +
       " ringbuf=" + yn(f.ringbuf) + " cgroup2=" + yn(f.cgroup2);
  return s;
}

}  // namespace helios::bpf
