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
 * Kernel data path (issue 6). Documented in docs/datapath.md.
 *
 * Same-host bypass (bpf/sockops_bypass.bpf.c): a sockops program on a cgroup v2 puts the
 * proxy's own local TCP connections (by endpoint, see bypass_endpoints) into a SOCKHASH keyed
 * by the socket's 4-tuple; an sk_msg program on that SOCKHASH delivers every send() straight
 * into the peer socket's receive queue (bpf_msg_redirect_hash + BPF_F_INGRESS), skipping the
 * loopback TCP stack. Sockets whose endpoints are not listed are never added.
 * ------------------------------------------------------------------------------------------ */

#define HELIOS_SOCK_BYPASS_MAX_ENDPOINTS 64
#define HELIOS_SOCK_BYPASS_MAX_SOCKETS 65536

#define HELIOS_MAP_BYPASS_SOCKS "bypass_socks"         /* SOCKHASH sock_tuple_key -> socket */
#define HELIOS_MAP_BYPASS_ENDPOINTS "bypass_endpoints" /* HASH endpoint -> role */
#define HELIOS_MAP_BYPASS_STATS "bypass_stats"         /* PERCPU_ARRAY [1] */

/* One TCP socket's 4-tuple as that socket sees it. The peer socket on this host has the same
 * key with local and remote swapped: that is how sk_msg finds where to deliver. */
struct sock_tuple_key {
  __u8 local_addr[HELIOS_ADDR_LEN];  /* network order, IPv4-mapped for IPv4 */
  __u8 remote_addr[HELIOS_ADDR_LEN]; /* network order, IPv4-mapped for IPv4 */
  __u16 local_port;                  /* HOST order */
  __u16 remote_port;                 /* HOST order */
  __u32 pad;
};
HELIOS_ABI_ASSERT(sizeof(struct sock_tuple_key) == 40, "sock_tuple_key size");

/* Hash "bypass_endpoints": the endpoints whose connections may be bypassed: the proxy's
 * listen address(es) and the database address(es). An all-zero addr matches any address with
 * that port (a proxy listening on 0.0.0.0). A socket qualifies when its local or its remote
 * endpoint is listed AND its peer is on this host (loopback, or remote address == local). */
enum sock_bypass_role {
  BYPASS_ROLE_PROXY_LISTEN = 1, /* app <-> proxy hop (sidecar) */
  BYPASS_ROLE_DATABASE = 2,     /* proxy <-> local PostgreSQL hop */
};

struct sock_endpoint_key {
  __u8 addr[HELIOS_ADDR_LEN]; /* network order, IPv4-mapped; all zero = any address */
  __u16 port;                 /* HOST order */
  __u16 pad;
};
HELIOS_ABI_ASSERT(sizeof(struct sock_endpoint_key) == 20, "sock_endpoint_key size");

struct sock_endpoint_value {
  __u32 role; /* enum sock_bypass_role */
};
HELIOS_ABI_ASSERT(sizeof(struct sock_endpoint_value) == 4, "sock_endpoint_value size");

/* Per-CPU array "bypass_stats" [1]. */
struct sock_bypass_stats {
  __u64 established;     /* sockops ESTABLISHED callbacks seen (every TCP socket in the cgroup) */
  __u64 added;           /* sockets put into bypass_socks */
  __u64 not_local;       /* endpoint listed but the peer is not on this host: left alone */
  __u64 add_failed;      /* bpf_sock_hash_update refused (map full, ...) */
  __u64 msgs_redirected; /* sendmsg calls delivered into the peer's receive queue */
  __u64 bytes_redirected;
  __u64 msgs_passed; /* sendmsg on a bypass socket whose peer is not in the map: normal TCP */
  __u64 pad;
};
HELIOS_ABI_ASSERT(sizeof(struct sock_bypass_stats) == 64, "sock_bypass_stats size");

/* ------------------------------------------------------------------------------------------
 * Lease splicing (bpf/sockmap_splice.bpf.c): both sockets of a lease sit in splice_socks (a
 * SOCKHASH keyed by socket cookie); an sk_skb stream_verdict program (no strparser) frames the
 * PostgreSQL messages of every skb itself and either redirects the skb to the peer socket
 * (egress) or passes it up to the socket's own receive queue for user space. The hand-off rules
 * between user space and the kernel are in docs/datapath.md ("Hand-off protocol").
 * ------------------------------------------------------------------------------------------ */

#define HELIOS_SOCK_MAX_TENANTS 256 /* tenant ids are indexes, as in the edge guard */
#define HELIOS_SOCK_MAX_WORKERS 64  /* one event ring per worker */
#define HELIOS_SOCK_SPLICE_MAX_SOCKETS 65536
#define HELIOS_SOCK_EVENT_RING_BYTES (256 * 1024)
#define HELIOS_SOCK_MAX_WALK 16384 /* message headers walked in one skb; more: hand back */

#define HELIOS_MAP_SPLICE_SOCKS "splice_socks"     /* SOCKHASH cookie -> socket */
#define HELIOS_MAP_SPLICE_CTL "splice_ctl"         /* HASH cookie -> struct splice_ctl */
#define HELIOS_MAP_SPLICE_STATE "splice_state"     /* HASH cookie -> struct splice_sock_state */
#define HELIOS_MAP_SPLICE_LEASES "splice_leases"   /* HASH lease id -> struct splice_lease */
#define HELIOS_MAP_SPLICE_TENANTS "splice_tenants" /* PERCPU_ARRAY tenant -> counters */
#define HELIOS_MAP_SPLICE_QPS "splice_qps"         /* ARRAY (mmapable) tenant -> QPS tokens */
#define HELIOS_MAP_SPLICE_EVENTS "splice_events"   /* ARRAY_OF_MAPS worker -> RINGBUF */
#define HELIOS_MAP_SPLICE_STATS "splice_stats"     /* PERCPU_ARRAY [1] */

enum splice_role {
  SPLICE_ROLE_CLIENT = 1,  /* application side: sends Query/Parse/Sync..., receives results */
  SPLICE_ROLE_BACKEND = 2, /* PostgreSQL side */
};

enum splice_mode {
  SPLICE_MODE_SESSION = 1,     /* the kernel never ends the lease */
  SPLICE_MODE_TRANSACTION = 2, /* ends at ReadyForQuery 'I' with nothing outstanding */
  SPLICE_MODE_STATEMENT = 3,   /* same end rule (the proxy refuses transactions earlier) */
};

/* splice_ctl.flags: what the verdict must hand to user space instead of forwarding. */
enum splice_ctl_flags {
  SPLICE_F_TRACK_NAMED = 1u << 0,      /* Parse / Close of a named statement or portal */
  SPLICE_F_QPS = 1u << 1,              /* statements take tokens from splice_qps[tenant] */
  SPLICE_F_PARAMETER_STATUS = 1u << 2, /* ParameterStatus from the backend */
  /* The client direction stays in user space: every client skb goes up (the lease is not
   * handed back for it); the kernel forwards only the backend's replies. The proxy's worker
   * uses this: it keeps inspecting every statement (pins, SET tracking, QPS) and tells the
   * kernel how many replies to expect by taking the lease back before it sends more. */
  SPLICE_F_CLIENT_UP = 1u << 3,
};

enum splice_lease_state {
  SPLICE_LEASE_ACTIVE = 1,      /* the kernel forwards (each direction once activated) */
  SPLICE_LEASE_ENDED = 2,       /* ended in the kernel at ReadyForQuery 'I' */
  SPLICE_LEASE_HANDED_BACK = 3, /* user space owns the lease again (see reason) */
};

enum splice_event_kind {
  SPLICE_EV_LEASE_ENDED = 1,   /* transaction/statement lease ended in the kernel */
  SPLICE_EV_HANDED_BACK = 2,   /* lease given back to user space: a message it must see */
  SPLICE_EV_FRAMING_ERROR = 3, /* bytes the verdict cannot frame: handed back too */
};

enum splice_reason {
  SPLICE_R_NONE = 0,
  SPLICE_R_READY_IDLE = 1,        /* ReadyForQuery 'I', nothing outstanding: lease ended */
  SPLICE_R_TERMINATE = 2,         /* client sent Terminate */
  SPLICE_R_NAMED_STATEMENT = 3,   /* Parse/Close of a named statement (SPLICE_F_TRACK_NAMED) */
  SPLICE_R_QPS_EMPTY = 4,         /* the tenant's QPS tokens ran out (SPLICE_F_QPS) */
  SPLICE_R_UNKNOWN_MESSAGE = 5,   /* a message type the verdict does not forward blind */
  SPLICE_R_BAD_LENGTH = 6,        /* length field < 4: unframeable */
  SPLICE_R_WALK_LIMIT = 7,        /* more than HELIOS_SOCK_MAX_WALK headers in one skb */
  SPLICE_R_BYTES_AFTER_END = 8,   /* the lease would end mid-skb: more bytes follow the 'Z' */
  SPLICE_R_PROTOCOL = 9,          /* more ReadyForQuery than outstanding requests */
  SPLICE_R_PARAMETER_STATUS = 10, /* backend ParameterStatus (SPLICE_F_PARAMETER_STATUS) */
  SPLICE_R_USER = 11,             /* user space took the lease back (unsplice) */
  SPLICE_R_NOT_CAUGHT_UP = 12,    /* activation refused: bytes reached user space after splice */
  SPLICE_R_REDIRECT_FAILED = 13,  /* the peer socket left the map */
  SPLICE_R_TXN_OPEN = 14,         /* statement mode: the last ReadyForQuery left a transaction open */
};

/* Hash "splice_ctl": how user space wants one socket handled. Written by user space only
 * (whole-value updates); the verdict only reads it. */
struct splice_ctl {
  __u64 peer_cookie;   /* the other socket of the lease */
  __u64 lease_id;      /* key of splice_leases (the client socket's cookie); 0 = no lease */
  __u64 expect_passed; /* activation: splice_sock_state.passed_bytes user space has consumed */
  __u32 lease_seq;     /* must equal splice_lease.seq, else this ctl is stale */
  __u32 tenant_id;     /* index into splice_tenants / splice_qps */
  __u32 flags;         /* enum splice_ctl_flags */
  __u16 worker;        /* index into splice_events */
  __u8 role;           /* enum splice_role */
  __u8 mode;           /* enum splice_mode */
};
HELIOS_ABI_ASSERT(sizeof(struct splice_ctl) == 40, "splice_ctl size");

/* A framing position in one direction's byte stream. At a message boundary msg_left == 0,
 * hdr_have == 0 and peek_need == 0. */
struct splice_frame {
  __u32 msg_left; /* body bytes of the current message still to come */
  __u8 hdr_have;  /* bytes of the next 5-byte header seen so far (0..4) */
  __u8 hdr[5];    /* those bytes */
  __u8 peek_need; /* body bytes of the current message still needed to classify it (0..2) */
  __u8 peek_have;
  __u8 peek[2]; /* first body bytes of the current message */
  __u8 type;    /* current message type */
  __u8 pad;
};
HELIOS_ABI_ASSERT(sizeof(struct splice_frame) == 16, "splice_frame size");

/* Hash "splice_state": what the verdict saw on one socket. Created zeroed by user space when the
 * socket is added, then written only by that socket's verdict (and the peer's, for
 * redirected_in, with an atomic add). */
struct splice_sock_state {
  __u64 rx_bytes;        /* every byte the verdict saw on this socket */
  __u64 passed_bytes;    /* bytes passed up to this socket's own queue (user space reads them) */
  __u64 forwarded_bytes; /* bytes redirected to the peer */
  __u64 redirected_in;   /* bytes the peer's verdict redirected into this socket (egress) */
  __u64 skbs;
  __u64 handback_at;         /* passed_bytes when the first byte after kernel forwarding went up */
  struct splice_frame frame; /* position after the last skb */
  struct splice_frame handback; /* position at handback_at: how the passed-up bytes start */
  __u32 active;                 /* 1: this direction is forwarded by the kernel */
  __u32 active_seq;             /* lease_seq it was activated for */
  __u32 handbacks;              /* times this direction went from the kernel back to user space */
  __u32 reason;                 /* enum splice_reason of the last hand-back seen on this socket */
};
HELIOS_ABI_ASSERT(sizeof(struct splice_sock_state) == 96, "splice_sock_state size");

/* Hash "splice_leases": the shared state of one lease, under its spin lock. Created by user
 * space (splice), then changed by the two verdicts and by the control program (unsplice). */
struct splice_lease {
  struct bpf_spin_lock lock;
  __u32 state;       /* enum splice_lease_state */
  __u32 seq;         /* lease sequence number chosen by user space */
  __u32 outstanding; /* Query/Sync/FunctionCall sent, ReadyForQuery not yet seen */
  __u32 unsynced;    /* extended-protocol messages since the last Sync */
  __u32 client_mid;  /* the client stream stopped inside a message */
  __u32 tenant_id;
  __u32 reason;   /* enum splice_reason: why the state left ACTIVE */
  __u8 mode;      /* enum splice_mode */
  __u8 tx_status; /* last ReadyForQuery status: 'I', 'T' or 'E' */
  __u16 worker;
  __u32 pad;
  __u64 queries;          /* statements forwarded by the kernel in this lease */
  __u64 transactions;     /* ReadyForQuery 'I' forwarded by the kernel in this lease */
  __u64 bytes_to_backend; /* forwarded client -> backend */
  __u64 bytes_to_client;  /* forwarded backend -> client */
};
HELIOS_ABI_ASSERT(sizeof(struct splice_lease) == 72, "splice_lease size");

/* Per-CPU array "splice_tenants" [HELIOS_SOCK_MAX_TENANTS]: what the kernel forwarded, per tenant.
 * User space adds these to the same per-tenant metrics as the user-space path. */
struct splice_tenant_counters {
  __u64 queries;      /* Query, Execute, FunctionCall forwarded */
  __u64 transactions; /* ReadyForQuery 'I' forwarded */
  __u64 bytes_to_backend;
  __u64 bytes_to_client;
  __u64 leases_ended; /* leases ended in the kernel */
  __u64 handbacks;    /* leases handed back to user space */
  __u64 qps_refused;  /* skbs handed back because the QPS tokens ran out */
  __u64 pad;
};
HELIOS_ABI_ASSERT(sizeof(struct splice_tenant_counters) == 64, "splice_tenant_counters size");

/* Array "splice_qps" [HELIOS_SOCK_MAX_TENANTS], BPF_F_MMAPABLE: tokens the control plane gives
 * the kernel out of the tenant's own bucket. The verdict takes one per statement with an atomic
 * add; user space adds with an atomic add on the mmapped value. */
struct splice_qps_bucket {
  __s64 tokens;
  __u64 taken; /* statements admitted by the kernel (monotonic) */
};
HELIOS_ABI_ASSERT(sizeof(struct splice_qps_bucket) == 16, "splice_qps_bucket size");

/* Ring buffer record (splice_events[worker]). Counts are the lease's final values, taken under
 * the lease lock when the state left ACTIVE. */
struct splice_event {
  __u64 lease_id;
  __u64 cookie; /* the socket whose skb caused the event */
  __u64 ts_ns;  /* bpf_ktime_get_ns() */
  __u64 queries;
  __u64 transactions;
  __u64 bytes_to_backend;
  __u64 bytes_to_client;
  __u32 kind;   /* enum splice_event_kind */
  __u32 reason; /* enum splice_reason */
  __u32 lease_seq;
  __u32 tenant_id;
  __u32 outstanding;
  __u32 unsynced;
  __u8 role; /* of `cookie` */
  __u8 tx_status;
  __u8 msg_type; /* the message that caused it, when there is one */
  __u8 pad[5];
};
HELIOS_ABI_ASSERT(sizeof(struct splice_event) == 88, "splice_event size");

/* Per-CPU array "splice_stats" [1]. */
struct splice_stats {
  __u64 skbs;
  __u64 bytes;
  __u64 forwarded_skbs;
  __u64 passed_skbs;
  __u64 no_state; /* socket in the map without ctl/state: passed */
  __u64 activations;
  __u64 activations_refused;
  __u64 redirect_failed;
  __u64 events_lost; /* ring full or missing */
  __u64 pad;
};
HELIOS_ABI_ASSERT(sizeof(struct splice_stats) == 80, "splice_stats size");

/* Control program (SEC "tc", run with BPF_PROG_TEST_RUN): an atomic operation on a lease under
 * its lock, requested from user space. The request travels as packet data after a 14-byte
 * pseudo Ethernet header; the reply overwrites it. */
enum splice_op_code {
  SPLICE_OP_UNSPLICE = 1, /* ACTIVE -> HANDED_BACK (reason USER); reply: the lease */
  SPLICE_OP_READ = 2,     /* reply: the lease, unchanged */
};
struct splice_op {
  __u8 eth[14]; /* ignored */
  __u16 code;   /* enum splice_op_code */
  __u64 lease_id;
  __u32 seq;
  __u32 result; /* reply: 0 ok, 1 no such lease, 2 seq differs */
  __u32 prev_state;
  __u32 state;
  __u32 outstanding;
  __u32 unsynced;
  __u32 client_mid;
  __u32 reason;
  __u8 tx_status;
  __u8 pad[7];
};
HELIOS_ABI_ASSERT(sizeof(struct splice_op) == 64, "splice_op size");

/* ------------------------------------------------------------------------------------------
 * sk_msg reply path (bpf/skmsg_reply.bpf.c, issue 18 item 3): a COMPONENT under measurement
 * (bench/kernel/ skmsg-reply), not a data path of the proxy. Documented in docs/datapath.md.
 *
 * A sockops program puts the sockets a local PostgreSQL accepts (local port == skmsg_config's
 * db_port, peer on this host) into skmsg_socks, keyed by their 4-tuple. The sk_msg program on
 * skmsg_socks runs inside PostgreSQL's own sendmsg: when that socket has a route (skmsg_routes)
 * to a lease slot that user space armed, it frames the replies and redirects them to the EGRESS
 * of the slot's client socket (skmsg_targets[slot], bpf_msg_redirect_map without
 * BPF_F_INGRESS), up to and including the ReadyForQuery 'I' that ends the lease; then it
 * disarms the slot (the slot's `ended` grows) and every later byte takes the normal TCP way to
 * the relay. A ReadyForQuery may be split across sendmsg calls (the framing position is kept
 * in the slot); bytes after the 'I' in the same sendmsg are cut off with bpf_msg_apply_bytes.
 * ------------------------------------------------------------------------------------------ */

#define HELIOS_SKMSG_MAX_LEASES 1024   /* lease slots (skmsg_leases, skmsg_targets) */
#define HELIOS_SKMSG_MAX_SOCKETS 65536 /* PostgreSQL sockets in skmsg_socks */
#define HELIOS_SKMSG_MAX_WALK 256      /* framing steps per program run; then apply_bytes */

#define HELIOS_MAP_SKMSG_SOCKS "skmsg_socks"     /* SOCKHASH sock_tuple_key -> socket */
#define HELIOS_MAP_SKMSG_TARGETS "skmsg_targets" /* SOCKMAP [MAX_LEASES] slot -> client socket */
#define HELIOS_MAP_SKMSG_ROUTES "skmsg_routes"   /* HASH sock_tuple_key -> __u32 slot */
#define HELIOS_MAP_SKMSG_LEASES "skmsg_leases"   /* ARRAY [MAX_LEASES], mmapable */
#define HELIOS_MAP_SKMSG_CONFIG "skmsg_config"   /* ARRAY [1] struct skmsg_config */
#define HELIOS_MAP_SKMSG_STATS "skmsg_stats"     /* PERCPU_ARRAY [1] struct skmsg_stats */

struct skmsg_config {
  __u16 db_port; /* HOST order: PostgreSQL's listen port; 0 = add nothing */
  __u16 pad;
  __u32 pad2;
};
HELIOS_ABI_ASSERT(sizeof(struct skmsg_config) == 8, "skmsg_config size");

enum skmsg_lease_state {
  SKMSG_IDLE = 0,  /* replies go the normal TCP way (to the relay) */
  SKMSG_ARMED = 1, /* replies are redirected to the client until a ReadyForQuery 'I' */
};

/* Array "skmsg_leases" (mmapped by user space). User space resets a slot when it routes a
 * socket to it, then arms it (atomic store of `state`) before it forwards each request; the
 * program writes the framing fields only while ARMED and disarms at the end. */
struct skmsg_lease {
  __u32 state;      /* enum skmsg_lease_state */
  __u32 msg_left;   /* framing: body bytes of the current message still to come */
  __u8 hdr[5];      /* framing: the partial header (type + length) */
  __u8 hdr_have;    /* bytes in hdr, 0-4 */
  __u8 cur_type;    /* type of the message whose body is being walked */
  __u8 last_status; /* status byte of the last ReadyForQuery */
  __u32 error;      /* 1: a length < 4 was framed; the slot was disarmed */
  /* A redirect into a full client send buffer fails part-way (tcp_bpf_push: -EAGAIN for a
   * non-blocking sender such as PostgreSQL): the kernel drops the rest of the msg and tells the
   * sender fewer bytes were sent, and the sender sends them again. After each sendmsg the
   * raw tracepoint sock_send_length compares `call_bytes` (redirected during the call) with the
   * bytes sent and counts the difference here; the sk_msg program redirects that many bytes of
   * the next msg again without framing them twice. */
  __u32 replay;
  __u32 call_bytes;
  __u8 ended_in_call;    /* the program ended the lease during this sendmsg */
  __u8 end_after_replay; /* that end was dropped: end again after the `replay` bytes */
  __u16 pad;
  __u64 armed;    /* times armed (user space) */
  __u64 ended;    /* leases ended by a ReadyForQuery 'I' (program) */
  __u64 rfq;      /* ReadyForQuery messages redirected */
  __u64 bytes;    /* bytes delivered to the client socket by redirects */
  __u64 msgs;     /* PostgreSQL messages framed */
  __u64 replayed; /* bytes redirected again after a failed redirect (also in `bytes`) */
};
HELIOS_ABI_ASSERT(sizeof(struct skmsg_lease) == 80, "skmsg_lease size");

/* Per-CPU array "skmsg_stats" [1]. */
struct skmsg_stats {
  __u64 added;      /* PostgreSQL sockets put into skmsg_socks (sockops) */
  __u64 runs;       /* sk_msg program runs */
  __u64 passed;     /* runs with no route or an idle slot: normal TCP */
  __u64 redirected; /* runs that redirected (all or the first apply_bytes of the msg) */
  __u64 bytes_redirected;
  __u64 redirect_failed; /* the slot's target socket is missing: passed instead */
  __u64 rfq_idle;        /* ReadyForQuery 'I' that ended a lease */
  __u64 pulls;           /* bpf_msg_pull_data calls (bytes outside the first scatterlist entry) */
  __u64 split;           /* bpf_msg_apply_bytes cuts (lease end mid-msg, walk limit) */
  __u64 framing_errors;
  __u64 redirect_errors; /* redirects that failed part-way (client send buffer full) */
  __u64 replayed_bytes;  /* bytes the sender sent again after such a failure */
  __u64 ends_redone;     /* lease ends whose 'I' was dropped, ended again after the re-send */
};
HELIOS_ABI_ASSERT(sizeof(struct skmsg_stats) == 104, "skmsg_stats size");

#endif /* HELIOS_BPF_ABI_H */
