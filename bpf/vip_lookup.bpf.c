// SPDX-License-Identifier: GPL-2.0
/* Transparent VIP: an sk_lookup program (attached to a network namespace) that hands new TCP
 * connections for VIP:port to the proxy's listening socket, held in the one-slot SOCKMAP
 * vip_listener. With `local VIP/32 dev lo` routing the kernel accepts packets for the VIP as
 * local; this program picks the socket, so the proxy needs no listener bound to the VIP and no
 * iptables. The accepted socket's getsockname() is the VIP. The VIP is read-only data set by
 * user space before load (struct vip_lookup_rodata in include/helios/bpf_abi.h). */
#include "vmlinux.h"

#include "helios/bpf_abi.h"
#include "lib/net.bpf.h"

#define AF_INET_ 2
#define AF_INET6_ 10

char LICENSE[] SEC("license") = "GPL";

const volatile struct vip_lookup_rodata vip_cfg = {};

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} vip_listener SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct vip_lookup_stats);
} vip_stats SEC(".maps");

/* Word i of the VIP as the kernel stores addresses (network byte order in memory). Read byte by
 * byte through the volatile object: a memcpy would let the compiler fold the zero initializer. */
static __always_inline __u32 vip_word(int i) {
  __u32 w = 0;
  __u8 b0 = vip_cfg.vip_addr[i * 4], b1 = vip_cfg.vip_addr[i * 4 + 1];
  __u8 b2 = vip_cfg.vip_addr[i * 4 + 2], b3 = vip_cfg.vip_addr[i * 4 + 3];
  __u8* p = (__u8*)&w;
  p[0] = b0;
  p[1] = b1;
  p[2] = b2;
  p[3] = b3;
  return w;
}

static __always_inline bool matches_vip(struct bpf_sk_lookup* ctx) {
  /* Context fields are read up front, each at a constant offset: the verifier refuses a context
   * access whose offset the compiler turned into a variable when merging branches. */
  __u32 port = ctx->local_port, family = ctx->family;
  __u32 ip4 = ctx->local_ip4;
  __u32 ip6_0 = ctx->local_ip6[0], ip6_1 = ctx->local_ip6[1];
  __u32 ip6_2 = ctx->local_ip6[2], ip6_3 = ctx->local_ip6[3];
  if (port != vip_cfg.vip_port) return false;
  if (vip_cfg.is_ipv4) return family == AF_INET_ && ip4 == vip_word(3);
  return family == AF_INET6_ && ip6_0 == vip_word(0) && ip6_1 == vip_word(1) &&
         ip6_2 == vip_word(2) && ip6_3 == vip_word(3);
}

SEC("sk_lookup")
int vip_lookup(struct bpf_sk_lookup* ctx) {
  __u32 zero = 0;
  if (ctx->protocol != IPPROTO_TCP_) return SK_PASS;
  struct vip_lookup_stats* st = bpf_map_lookup_elem(&vip_stats, &zero);
  if (!st) return SK_PASS;
  st->lookups++;
  if (!matches_vip(ctx)) return SK_PASS;

  __u32 key = HELIOS_VIP_LISTENER_KEY;
  struct bpf_sock* sk = bpf_map_lookup_elem(&vip_listener, &key);
  if (!sk) {
    st->no_listener++;
    return SK_PASS; /* normal lookup: nothing listens on the VIP, the SYN gets a RST */
  }
  long err = bpf_sk_assign(ctx, sk, 0);
  bpf_sk_release(sk);
  if (err)
    st->assign_failed++;
  else
    st->steered++;
  return SK_PASS;
}
