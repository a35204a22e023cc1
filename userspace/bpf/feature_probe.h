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
  std::string bpf_syscall_error;  // why bpf(2) failed, if it did
};

// Probes everything above. Never fails; a false field is a missing feature.
KernelFeatures probe_kernel_features();

// The first missing feature needed by the XDP edge guard, as an error; ok if all present.
Status require_edge_guard(const KernelFeatures& f);
// Same for the sk_lookup transparent VIP.
Status require_vip_steering(const KernelFeatures& f);

// "xdp=yes sk_lookup=no ..." for logs and `heliosctl attach --probe`.
std::string describe(const KernelFeatures& f);

}  // namespace helios::bpf
