// Run-time probe of the kernel features the BPF programs need. Never `#if` on kernel versions:
// ask the kernel (libbpf_probe_bpf_prog_type / _map_type and a trial map creation) and turn a
// "no" into a missing-feature error that names the feature.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace helios::bpf {

struct KernelFeatures {
  bool bpf_syscall = false;       // bpf(2) works for this process (privileges included)
  bool btf_vmlinux = false;       // /sys/kernel/btf/vmlinux (CO-RE relocations)
  bool bpffs = false;             // /sys/fs/bpf is a bpf filesystem (pinning)
  bool xdp = false;               // BPF_PROG_TYPE_XDP
  bool sk_lookup = false;         // BPF_PROG_TYPE_SK_LOOKUP
  bool lpm_trie = false;          // BPF_MAP_TYPE_LPM_TRIE
  bool percpu_array = false;      // BPF_MAP_TYPE_PERCPU_ARRAY
  bool sockmap = false;           // BPF_MAP_TYPE_SOCKMAP
  bool spin_lock = false;         // bpf_spin_lock in an array value (needs BTF)
  bool sockhash = false;          // BPF_MAP_TYPE_SOCKHASH
  bool sock_ops = false;          // BPF_PROG_TYPE_SOCK_OPS
  bool sk_msg = false;            // BPF_PROG_TYPE_SK_MSG
  bool sk_skb = false;            // BPF_PROG_TYPE_SK_SKB
  bool ringbuf = false;           // BPF_MAP_TYPE_RINGBUF
  bool cgroup2 = false;           // a cgroup v2 hierarchy at kDefaultCgroup2 (sockops attach)
  std::string bpf_syscall_error;  // why bpf(2) failed, if it did
};

// Where this machine kind mounts the cgroup v2 hierarchy (hybrid layout), and the usual place.
inline constexpr const char* kDefaultCgroup2 = "/sys/fs/cgroup/unified";
// True if `path` is a directory on a cgroup2 filesystem.
bool is_cgroup2_dir(const std::string& path);
// The cgroup v2 mount: kDefaultCgroup2, else /sys/fs/cgroup if that is cgroup2, else "".
std::string find_cgroup2_mount();

// Probes everything above. Never fails; a false field is a missing feature.
KernelFeatures probe_kernel_features();

// The first missing feature needed by the XDP edge guard, as an error; ok if all present.
Status require_edge_guard(const KernelFeatures& f);
// Same for the sk_lookup transparent VIP.
Status require_vip_steering(const KernelFeatures& f);
// Same-host bypass: sockops on cgroup v2 + sk_msg on a SOCKHASH (cgroup checked by the caller).
Status require_bypass(const KernelFeatures& f);
// Lease splicing: sk_skb verdict on a SOCKHASH, ring buffer events, bpf_spin_lock.
Status require_splice(const KernelFeatures& f);

// "xdp=yes sk_lookup=no ..." for logs and `heliosctl attach --probe`.
std::string describe(const KernelFeatures& f);

}  // namespace helios::bpf
