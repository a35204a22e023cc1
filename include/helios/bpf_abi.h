/* THE kernel/user ABI of HeliosProxy's BPF programs. Plain C, included by the BPF programs
 * (after vmlinux.h) and by the C++ control plane. Every map key and value, event, enum and limit
 * lives here and nowhere else; sizes are pinned by static asserts so that a field added on one
 * side cannot silently shift the other. Field names are what `bpftool map dump` prints (BTF), so
 * they are spelled for an operator reading a dump. Documented map by map in docs/bpf-maps.md.
 *
 * Sections: common (addresses), edge guard (bpf/xdp_guard.bpf.c), transparent VIP
 * (bpf/vip_lookup.bpf.c). The kernel data path (sockmap, issue 6) adds its own section below
 * with the prefix HELIOS_SOCK_ / struct sock_*, reusing the common types. */
#ifndef HELIOS_BPF_ABI_H
#define HELIOS_BPF_ABI_H

#ifndef __VMLINUX_H__
#include <linux/bpf.h> /* struct bpf_spin_lock */
#include <linux/types.h>
#endif

#ifdef __cplusplus
#define HELIOS_ABI_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define HELIOS_ABI_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* ------------------------------------------------------------------------------------------
 * Common
 * ------------------------------------------------------------------------------------------ */

/* Every address is kept as 16 bytes in network order; IPv4 is IPv4-mapped IPv6
 * (::ffff:a.b.c.d), so one LPM trie and one hash serve both families. */
#define HELIOS_ADDR_LEN 16
#define HELIOS_V4_MAPPED_PREFIX_BITS 96 /* add to an IPv4 prefix length */

/* Pin root; each instance pins under HELIOS_PIN_ROOT "/" <instance> "/" <map name>. */
#define HELIOS_PIN_ROOT "/sys/fs/bpf/helios"

/* ------------------------------------------------------------------------------------------
 * Edge guard: XDP program in front of the proxy's VIP (issue 5).
 * ------------------------------------------------------------------------------------------ */

/* Limits. Tenant ids are array indexes; id 0 is the pseudo-tenant "(unmatched)": VIP traffic
 * whose source is in no tenant CIDR. Real tenants get ids 1..HELIOS_EDGE_MAX_TENANTS-1. */
#define HELIOS_EDGE_MAX_TENANTS 256
#define HELIOS_EDGE_MAX_CIDRS 4096
#define HELIOS_EDGE_MAX_VIPS 16
#define HELIOS_EDGE_TENANT_NAME_LEN 32
#define HELIOS_EDGE_UNMATCHED_TENANT 0
#define HELIOS_EDGE_MAX_VLAN_TAGS 2
#define HELIOS_EDGE_MAX_IPV6_EXT_HDRS 6
/* Token amounts are stored in milli-tokens (1 SYN = 1000) so fractional rates work without
 * floating point. The rate cap keeps elapsed_ns * rate_milli inside 64 bits for the refill
 * window below. */
#define HELIOS_EDGE_TOKEN_SCALE 1000ULL
#define HELIOS_EDGE_MAX_SYN_RATE 1000000ULL /* SYNs per second, per bucket */
#define HELIOS_EDGE_REFILL_WINDOW_NS 10000000000ULL /* 10 s: a full refill for any sane burst */

/* Map names: the pin file names under HELIOS_PIN_ROOT/<instance>/. Must equal the identifiers
 * in bpf/xdp_guard.bpf.c (checked by tests/bpf/abi_test.cpp). */
#define HELIOS_MAP_GUARD_CONFIG "guard_config"
#define HELIOS_MAP_VIP_TABLE "vip_table"
#define HELIOS_MAP_TENANT_CIDRS "tenant_cidrs"
#define HELIOS_MAP_TENANT_RULES "tenant_rules"
#define HELIOS_MAP_SYN_BUCKETS "syn_buckets"
#define HELIOS_MAP_GLOBAL_BUCKET "global_bucket"
#define HELIOS_MAP_TENANT_COUNTERS "tenant_counters"
#define HELIOS_MAP_GUARD_STATS "guard_stats"
#define HELIOS_PIN_XDP_PROG "xdp_guard_prog"

/* guard_config.flags */
enum edge_config_flags {
  EDGE_CFG_GLOBAL_LIMIT = 1u << 0,   /* the global bucket applies (else: unlimited) */
  EDGE_CFG_DROP_FRAGMENTS = 1u << 1, /* drop IP fragments addressed to a VIP address */
};

/* guard_config.attach_mode, written by user space for operators (the program ignores it). */
enum edge_attach_mode {
  EDGE_ATTACH_NONE = 0,
  EDGE_ATTACH_NATIVE_SINGLE = 1, /* native XDP, libxdp legacy single-program attach */
  EDGE_ATTACH_SKB_SINGLE = 2,    /* generic (skb) XDP, single program */
  EDGE_ATTACH_NATIVE_MULTI = 3,  /* native XDP behind the libxdp dispatcher */
  EDGE_ATTACH_SKB_MULTI = 4,     /* generic XDP behind the libxdp dispatcher */
};

/* tenant_rules[i].flags */
enum edge_rule_flags {
  EDGE_RULE_IN_USE = 1u << 0,    /* slot holds a tenant */
  EDGE_RULE_SYN_LIMIT = 1u << 1, /* the tenant's SYN bucket applies (else: only the global one) */
};

/* Single-entry array "guard_config": global knobs, changed at run time without reloading. */
struct edge_guard_config {
  __u64 global_syn_rate_milli;  /* milli-SYNs per second */
  __u64 global_syn_burst_milli; /* bucket depth, milli-SYNs */
  __u32 flags;                  /* enum edge_config_flags */
  __u32 ifindex;                /* informational: where the guard is attached */
  __u32 attach_mode;            /* informational: enum edge_attach_mode */
  __u32 config_generation;      /* bumped by every control-plane update */
};
HELIOS_ABI_ASSERT(sizeof(struct edge_guard_config) == 32, "edge_guard_config size");

/* Hash "vip_table": which destination addr:port pairs the guard protects. User space also
 * inserts one entry with port 0 per VIP address (EDGE_VIP_ADDRESS_ONLY), used to recognise
 * fragments addressed to a VIP (they carry no port). TCP to port 0 never matches. */
enum edge_vip_flags {
  EDGE_VIP_ADDRESS_ONLY = 1u << 0,
};

struct edge_vip_key {
  __u8 addr[HELIOS_ADDR_LEN]; /* network order, IPv4-mapped for IPv4 */
  __u16 port;                 /* network order */
  __u16 pad;
};
HELIOS_ABI_ASSERT(sizeof(struct edge_vip_key) == 20, "edge_vip_key size");

struct edge_vip_value {
  __u32 flags; /* enum edge_vip_flags */
};
HELIOS_ABI_ASSERT(sizeof(struct edge_vip_value) == 4, "edge_vip_value size");

/* LPM trie "tenant_cidrs": source prefix -> tenant id. prefixlen counts bits of addr; an IPv4
 * /24 is stored as ::ffff:a.b.c.0/120. */
struct edge_cidr_key {
  __u32 prefixlen;
  __u8 addr[HELIOS_ADDR_LEN];
};
HELIOS_ABI_ASSERT(sizeof(struct edge_cidr_key) == 20, "edge_cidr_key size");

struct edge_cidr_value {
  __u32 tenant_id; /* index into tenant_rules / syn_buckets / tenant_counters */
};
HELIOS_ABI_ASSERT(sizeof(struct edge_cidr_value) == 4, "edge_cidr_value size");

/* Array "tenant_rules" [HELIOS_EDGE_MAX_TENANTS]: written by the control plane only. */
struct edge_tenant_rule {
  char name[HELIOS_EDGE_TENANT_NAME_LEN]; /* tenant name, NUL padded */
  __u64 syn_rate_milli;                   /* milli-SYNs per second */
  __u64 syn_burst_milli;                  /* bucket depth, milli-SYNs */
  __u32 flags;                            /* enum edge_rule_flags */
  __u32 generation;                       /* config_generation that last wrote this slot */
};
HELIOS_ABI_ASSERT(sizeof(struct edge_tenant_rule) == 56, "edge_tenant_rule size");

/* Arrays "syn_buckets" [HELIOS_EDGE_MAX_TENANTS] and "global_bucket" [1]: token bucket state,
 * written by the program under the lock. last_refill_ns == 0 means "never used: full". The
 * control plane zeroes a slot when it gives it to a different tenant. */
struct edge_syn_bucket {
  struct bpf_spin_lock lock;
  __u32 pad;
  __u64 tokens_milli;
  __u64 last_refill_ns; /* bpf_ktime_get_ns() of the last refill */
};
HELIOS_ABI_ASSERT(sizeof(struct edge_syn_bucket) == 24, "edge_syn_bucket size");

/* Per-CPU array "tenant_counters" [HELIOS_EDGE_MAX_TENANTS]: VIP traffic per tenant. */
struct edge_tenant_counters {
  __u64 packets;         /* TCP packets to a VIP from this tenant (all flags) */
  __u64 bytes;           /* their frame bytes */
  __u64 syn_seen;        /* SYN without ACK */
  __u64 syn_passed;      /* admitted by both buckets */
  __u64 syn_dropped;     /* dropped: tenant bucket empty */
  __u64 syn_dropped_global; /* dropped: global bucket empty */
};
HELIOS_ABI_ASSERT(sizeof(struct edge_tenant_counters) == 48, "edge_tenant_counters size");

/* Per-CPU array "guard_stats" [1]: everything the program saw, by outcome. */
struct edge_guard_stats {
  __u64 packets;            /* every packet the program ran on */
  __u64 vip_packets;        /* TCP to a VIP (also counted per tenant) */
  __u64 non_vip;            /* passed untouched: not TCP to a VIP */
  __u64 short_headers;      /* a header ran past the end of the frame: XDP_PASS */
  __u64 malformed;          /* bad IHL/doff and the like: XDP_PASS, the stack drops them */
  __u64 fragments;          /* IPv4/IPv6 fragments: XDP_PASS (or drop with DROP_FRAGMENTS) */
  __u64 fragments_dropped;  /* fragments to a VIP address dropped by EDGE_CFG_DROP_FRAGMENTS */
  __u64 ipv6_ext_unwalked;  /* IPv6 extension headers not walked (AH, ESP, too many): pass */
  __u64 syn_dropped;        /* all SYN drops (tenant + global) */
  __u64 pad;
};
HELIOS_ABI_ASSERT(sizeof(struct edge_guard_stats) == 80, "edge_guard_stats size");

/* ------------------------------------------------------------------------------------------
 * Transparent VIP: sk_lookup steering VIP:port to the proxy's listener (issue 5, part 4).
 * ------------------------------------------------------------------------------------------ */

#define HELIOS_MAP_VIP_LISTENER "vip_listener" /* SOCKMAP [1]: the proxy's listening socket */
#define HELIOS_MAP_VIP_STATS "vip_stats"
#define HELIOS_VIP_LISTENER_KEY 0

/* Read-only data of vip_lookup.bpf.c, set before load (skeleton rodata). */
struct vip_lookup_rodata {
  __u8 vip_addr[HELIOS_ADDR_LEN]; /* network order, IPv4-mapped for IPv4 */
  __u16 vip_port;                 /* HOST order: sk_lookup's local_port is host order */
  __u16 pad;
  __u32 is_ipv4;
};
HELIOS_ABI_ASSERT(sizeof(struct vip_lookup_rodata) == 24, "vip_lookup_rodata size");

/* Per-CPU array "vip_stats" [1]. */
struct vip_lookup_stats {
  __u64 lookups; /* sk_lookup runs for TCP */
  __u64 steered; /* assigned to the proxy listener */
  __u64 no_listener; /* matched the VIP but the sockmap slot was empty */
  __u64 assign_failed; /* bpf_sk_assign refused */
};
HELIOS_ABI_ASSERT(sizeof(struct vip_lookup_stats) == 32, "vip_lookup_stats size");

/* ------------------------------------------------------------------------------------------
 * Kernel data path (sockmap, issue 6): to be added here, same conventions.
 * ------------------------------------------------------------------------------------------ */

#endif /* HELIOS_BPF_ABI_H */
