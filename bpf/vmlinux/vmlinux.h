/* Trimmed vmlinux.h: the fallback used by cmake/BpfObject.cmake when the build machine has no
 * /sys/kernel/btf/vmlinux (or -DHELIOS_BPF_VMLINUX_FALLBACK=ON). It holds only the kernel types
 * the programs in bpf/ use, copied from `bpftool btf dump file /sys/kernel/btf/vmlinux format c` of a
 * 6.18 kernel. Kernel structs carry preserve_access_index, so CO-RE relocates field offsets to
 * the running kernel at load time; the UAPI context structs (xdp_md, bpf_sk_lookup) are stable.
 * Add a type here when a program starts using it (the normal build catches omissions only on
 * machines without BTF, so build once with the fallback forced after such a change). */
#ifndef __VMLINUX_H__
#define __VMLINUX_H__

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
#endif

typedef signed char __s8;
typedef unsigned char __u8;
typedef short int __s16;
typedef short unsigned int __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long int __s64;
typedef long long unsigned int __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u16 __sum16;
typedef __u32 __wsum;
typedef _Bool bool;

enum {
  false = 0,
  true = 1,
};

enum bpf_map_type {
  BPF_MAP_TYPE_UNSPEC = 0,
  BPF_MAP_TYPE_HASH = 1,
  BPF_MAP_TYPE_ARRAY = 2,
  BPF_MAP_TYPE_PERCPU_ARRAY = 6,
  BPF_MAP_TYPE_LPM_TRIE = 11,
  BPF_MAP_TYPE_SOCKMAP = 15,
};

enum {
  BPF_F_NO_PREALLOC = 1,
};

enum xdp_action {
  XDP_ABORTED = 0,
  XDP_DROP = 1,
  XDP_PASS = 2,
  XDP_TX = 3,
  XDP_REDIRECT = 4,
};

enum sk_action {
  SK_DROP = 0,
  SK_PASS = 1,
};

struct bpf_spin_lock {
  __u32 val;
};

struct xdp_md {
  __u32 data;
  __u32 data_end;
  __u32 data_meta;
  __u32 ingress_ifindex;
  __u32 rx_queue_index;
  __u32 egress_ifindex;
};

struct ethhdr {
  unsigned char h_dest[6];
  unsigned char h_source[6];
  __be16 h_proto;
};

struct iphdr {
  __u8 ihl : 4;
  __u8 version : 4;
  __u8 tos;
  __be16 tot_len;
  __be16 id;
  __be16 frag_off;
  __u8 ttl;
  __u8 protocol;
  __sum16 check;
  __be32 saddr;
  __be32 daddr;
};

struct in6_addr {
  union {
    __u8 u6_addr8[16];
    __be16 u6_addr16[8];
    __be32 u6_addr32[4];
  } in6_u;
};

struct ipv6hdr {
  __u8 priority : 4;
  __u8 version : 4;
  __u8 flow_lbl[3];
  __be16 payload_len;
  __u8 nexthdr;
  __u8 hop_limit;
  struct in6_addr saddr;
  struct in6_addr daddr;
};

struct tcphdr {
  __be16 source;
  __be16 dest;
  __be32 seq;
  __be32 ack_seq;
  __u16 res1 : 4;
  __u16 doff : 4;
  __u16 fin : 1;
  __u16 syn : 1;
  __u16 rst : 1;
  __u16 psh : 1;
  __u16 ack : 1;
  __u16 urg : 1;
  __u16 ece : 1;
  __u16 cwr : 1;
  __be16 window;
  __sum16 check;
  __be16 urg_ptr;
};

struct bpf_sock {
  __u32 bound_dev_if;
  __u32 family;
  __u32 type;
  __u32 protocol;
  __u32 mark;
  __u32 priority;
  __u32 src_ip4;
  __u32 src_ip6[4];
  __u32 src_port;
  __be16 dst_port;
  __u32 dst_ip4;
  __u32 dst_ip6[4];
  __u32 state;
  __s32 rx_queue_mapping;
};

struct bpf_sk_lookup {
  union {
    struct bpf_sock* sk;
    __u64 cookie;
  };
  __u32 family;
  __u32 protocol;
  __u32 remote_ip4;
  __u32 remote_ip6[4];
  __be16 remote_port;
  __u32 local_ip4;
  __u32 local_ip6[4];
  __u32 local_port;
  __u32 ingress_ifindex;
};

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* __VMLINUX_H__ */
