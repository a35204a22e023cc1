// SPDX-License-Identifier: GPL-2.0
/* XDP edge guard in front of the proxy's VIP.
 *
 * For TCP to a VIP addr:port (vip_table, IPv4 and IPv6): find the tenant by source address
 * (longest prefix in tenant_cidrs, id 0 when none), count packets and bytes per tenant (per-CPU),
 * and admit each SYN (SYN without ACK) through the tenant's token bucket and then the global
 * one. Over budget: XDP_DROP and counted; the client's TCP retries. Everything else passes
 * untouched: other traffic, fragments, short or malformed headers (the stack judges those) and
 * IPv6 extension headers this program does not walk. Rates and CIDRs live in maps the control
 * plane rewrites at run time, so a reload never detaches the program.
 *
 * Maps, fields and units: include/helios/bpf_abi.h and docs/bpf-maps.md. */
#include "vmlinux.h"

#include "helios/bpf_abi.h"
#include "lib/net.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct edge_guard_config);
} guard_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, HELIOS_EDGE_MAX_VIPS);
  __type(key, struct edge_vip_key);
  __type(value, struct edge_vip_value);
} vip_table SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, HELIOS_EDGE_MAX_CIDRS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct edge_cidr_key);
  __type(value, struct edge_cidr_value);
} tenant_cidrs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, HELIOS_EDGE_MAX_TENANTS);
  __type(key, __u32);
  __type(value, struct edge_tenant_rule);
} tenant_rules SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, HELIOS_EDGE_MAX_TENANTS);
  __type(key, __u32);
  __type(value, struct edge_syn_bucket);
} syn_buckets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct edge_syn_bucket);
} global_bucket SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, HELIOS_EDGE_MAX_TENANTS);
  __type(key, __u32);
  __type(value, struct edge_tenant_counters);
} tenant_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct edge_guard_stats);
} guard_stats SEC(".maps");

enum parse_result {
  PARSE_TCP,        /* flow filled in */
  PARSE_NOT_TCP,    /* not TCP, or not IP at all */
  PARSE_SHORT,      /* a header runs past the end of the frame */
  PARSE_MALFORMED,  /* a length field is impossible */
  PARSE_FRAGMENT,   /* IP fragment; flow.daddr is set */
  PARSE_UNWALKED,   /* IPv6 extension header chain this program does not follow */
};

struct flow {
  __u8 saddr[HELIOS_ADDR_LEN];
  __u8 daddr[HELIOS_ADDR_LEN];
  __u16 dport; /* network order */
  __u8 tcp_flags;
};

static __always_inline void set_v4_mapped(__u8* dst, __be32 addr) {
  __builtin_memset(dst, 0, 10);
  dst[10] = 0xff;
  dst[11] = 0xff;
  __builtin_memcpy(dst + 12, &addr, 4);
}

static __always_inline enum parse_result parse_tcp(struct cursor* c, struct flow* f) {
  struct tcphdr* tcp = CURSOR_TAKE(c, struct tcphdr);
  if (!tcp) return PARSE_SHORT;
  if (tcp->doff < 5) return PARSE_MALFORMED;
  if ((void*)tcp + tcp->doff * 4 > c->end) return PARSE_SHORT; /* options truncated */
  f->dport = tcp->dest;
  f->tcp_flags = ((__u8*)tcp)[13];
  return PARSE_TCP;
}

static __always_inline enum parse_result parse_ipv4(struct cursor* c, struct flow* f) {
  struct iphdr* ip = CURSOR_TAKE(c, struct iphdr);
  if (!ip) return PARSE_SHORT;
  if (ip->version != 4 || ip->ihl < 5) return PARSE_MALFORMED;
  if (bpf_ntohs(ip->tot_len) < ip->ihl * 4) return PARSE_MALFORMED;
  set_v4_mapped(f->saddr, ip->saddr);
  set_v4_mapped(f->daddr, ip->daddr);
  if (ip->frag_off & bpf_htons(IP_MF_ | IP_OFFSET_)) return PARSE_FRAGMENT;
  if (ip->protocol != IPPROTO_TCP_) return PARSE_NOT_TCP;
  __u64 header_len = (__u64)(ip->ihl & 0xf) * 4; /* 20..60, options included */
  c->pos = (void*)ip + header_len;
  if (c->pos > c->end) return PARSE_SHORT;
  return parse_tcp(c, f);
}

static __always_inline enum parse_result parse_ipv6(struct cursor* c, struct flow* f) {
  struct ipv6hdr* ip6 = CURSOR_TAKE(c, struct ipv6hdr);
  if (!ip6) return PARSE_SHORT;
  if (ip6->version != 6) return PARSE_MALFORMED;
  __builtin_memcpy(f->saddr, &ip6->saddr, HELIOS_ADDR_LEN);
  __builtin_memcpy(f->daddr, &ip6->daddr, HELIOS_ADDR_LEN);
  __u8 next = ip6->nexthdr;
#pragma unroll
  for (int i = 0; i < HELIOS_EDGE_MAX_IPV6_EXT_HDRS; i++) {
    if (next == IPPROTO_TCP_) return parse_tcp(c, f);
    if (next == IPPROTO_FRAGMENT_) return PARSE_FRAGMENT;
    if (next == IPPROTO_HOPOPTS_ || next == IPPROTO_ROUTING_ || next == IPPROTO_DSTOPTS_ ||
        next == IPPROTO_AH_) {
      struct ipv6_opt_hdr_* opt = CURSOR_TAKE(c, struct ipv6_opt_hdr_);
      if (!opt) return PARSE_SHORT;
      /* AH counts its length in 4-octet units minus 2; the others in 8-octet units minus 1. */
      __u32 len = next == IPPROTO_AH_ ? ((__u32)opt->hdrlen + 2) * 4 : ((__u32)opt->hdrlen + 1) * 8;
      next = opt->nexthdr;
      c->pos = (void*)opt + len;
      if (c->pos > c->end) return PARSE_SHORT;
      continue;
    }
    if (next == IPPROTO_ESP_) return PARSE_UNWALKED;
    return PARSE_NOT_TCP;
  }
  return next == IPPROTO_TCP_ ? parse_tcp(c, f) : PARSE_UNWALKED;
}

/* Refill by elapsed time, cap at burst, take one SYN's worth. Fractions of a milli-token are
 * kept by not moving last_refill_ns until at least one milli-token was earned, so a flood of
 * SYNs cannot starve a slow bucket of its refill. */
static __always_inline bool take_token(struct edge_syn_bucket* b, __u64 rate_milli,
                                       __u64 burst_milli, __u64 now) {
  bool admitted = false;
  bpf_spin_lock(&b->lock);
  __u64 tokens = b->tokens_milli;
  if (b->last_refill_ns == 0) {
    tokens = burst_milli;
    b->last_refill_ns = now;
  } else if (now > b->last_refill_ns) {
    __u64 elapsed = now - b->last_refill_ns;
    if (elapsed > HELIOS_EDGE_REFILL_WINDOW_NS) elapsed = HELIOS_EDGE_REFILL_WINDOW_NS;
    __u64 earned = elapsed * rate_milli / 1000000000ULL;
    if (earned > 0) {
      tokens += earned;
      b->last_refill_ns = now;
    }
  }
  if (tokens >= burst_milli) {
    tokens = burst_milli;
    b->last_refill_ns = now;
  }
  if (tokens >= HELIOS_EDGE_TOKEN_SCALE) {
    tokens -= HELIOS_EDGE_TOKEN_SCALE;
    admitted = true;
  }
  b->tokens_milli = tokens;
  bpf_spin_unlock(&b->lock);
  return admitted;
}

static __always_inline bool is_vip_address(const __u8* addr) {
  struct edge_vip_key key = {};
  __builtin_memcpy(key.addr, addr, HELIOS_ADDR_LEN);
  key.port = 0; /* address-only entry, see EDGE_VIP_ADDRESS_ONLY */
  return bpf_map_lookup_elem(&vip_table, &key) != 0;
}

SEC("xdp")
int xdp_guard(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  struct cursor c = {.pos = data, .end = data_end};
  __u32 zero = 0;

  struct edge_guard_stats* st = bpf_map_lookup_elem(&guard_stats, &zero);
  if (!st) return XDP_PASS;
  st->packets++;

  struct ethhdr* eth = CURSOR_TAKE(&c, struct ethhdr);
  if (!eth) {
    st->short_headers++;
    return XDP_PASS;
  }
  __u16 proto = eth->h_proto;
#pragma unroll
  for (int i = 0; i < HELIOS_EDGE_MAX_VLAN_TAGS; i++) {
    if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD)) break;
    struct vlan_hdr_* vlan = CURSOR_TAKE(&c, struct vlan_hdr_);
    if (!vlan) {
      st->short_headers++;
      return XDP_PASS;
    }
    proto = vlan->encapsulated_proto;
  }

  struct flow f = {};
  enum parse_result r;
  if (proto == bpf_htons(ETH_P_IP))
    r = parse_ipv4(&c, &f);
  else if (proto == bpf_htons(ETH_P_IPV6))
    r = parse_ipv6(&c, &f);
  else
    r = PARSE_NOT_TCP;

  switch (r) {
    case PARSE_TCP:
      break;
    case PARSE_NOT_TCP:
      st->non_vip++;
      return XDP_PASS;
    case PARSE_SHORT:
      st->short_headers++;
      return XDP_PASS;
    case PARSE_MALFORMED:
      st->malformed++;
      return XDP_PASS;
    case PARSE_UNWALKED:
      st->ipv6_ext_unwalked++;
      return XDP_PASS;
    case PARSE_FRAGMENT: {
      st->fragments++;
      struct edge_guard_config* cfg = bpf_map_lookup_elem(&guard_config, &zero);
      if (cfg && (cfg->flags & EDGE_CFG_DROP_FRAGMENTS) && is_vip_address(f.daddr)) {
        st->fragments_dropped++;
        return XDP_DROP;
      }
      return XDP_PASS;
    }
  }

  struct edge_vip_key vk = {};
  __builtin_memcpy(vk.addr, f.daddr, HELIOS_ADDR_LEN);
  vk.port = f.dport;
  if (vk.port == 0 || !bpf_map_lookup_elem(&vip_table, &vk)) {
    st->non_vip++;
    return XDP_PASS;
  }
  st->vip_packets++;

  struct edge_cidr_key ck = {.prefixlen = HELIOS_ADDR_LEN * 8};
  __builtin_memcpy(ck.addr, f.saddr, HELIOS_ADDR_LEN);
  __u32 tenant = HELIOS_EDGE_UNMATCHED_TENANT;
  struct edge_cidr_value* cv = bpf_map_lookup_elem(&tenant_cidrs, &ck);
  if (cv && cv->tenant_id < HELIOS_EDGE_MAX_TENANTS) tenant = cv->tenant_id;

  struct edge_tenant_counters* ctr = bpf_map_lookup_elem(&tenant_counters, &tenant);
  if (!ctr) return XDP_PASS;
  ctr->packets++;
  ctr->bytes += data_end - data;

  if ((f.tcp_flags & (TCP_FLAG_SYN_ | TCP_FLAG_ACK_)) != TCP_FLAG_SYN_) return XDP_PASS;
  ctr->syn_seen++;
  __u64 now = bpf_ktime_get_ns();

  struct edge_tenant_rule* rule = bpf_map_lookup_elem(&tenant_rules, &tenant);
  if (rule && (rule->flags & EDGE_RULE_IN_USE) && (rule->flags & EDGE_RULE_SYN_LIMIT)) {
    struct edge_syn_bucket* b = bpf_map_lookup_elem(&syn_buckets, &tenant);
    if (b && !take_token(b, rule->syn_rate_milli, rule->syn_burst_milli, now)) {
      ctr->syn_dropped++;
      st->syn_dropped++;
      return XDP_DROP;
    }
  }

  struct edge_guard_config* cfg = bpf_map_lookup_elem(&guard_config, &zero);
  if (cfg && (cfg->flags & EDGE_CFG_GLOBAL_LIMIT)) {
    struct edge_syn_bucket* g = bpf_map_lookup_elem(&global_bucket, &zero);
    if (g && !take_token(g, cfg->global_syn_rate_milli, cfg->global_syn_burst_milli, now)) {
      ctr->syn_dropped_global++;
      st->syn_dropped++;
      return XDP_DROP;
    }
  }
  ctr->syn_passed++;
  return XDP_PASS;
}
