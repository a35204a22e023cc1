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

static __always_inline bool matches_vip(struct bpf_sk_lookup* ctx) {
  if (ctx->local_port != vip_cfg.vip_port) return false;
  if (vip_cfg.is_ipv4) {
    __u32 want;
    __builtin_memcpy(&want, (const void*)&vip_cfg.vip_addr[12], 4);
    return ctx->family == AF_INET_ && ctx->local_ip4 == want;
  }
  if (ctx->family != AF_INET6_) return false;
  __u32 want6[4];
  __builtin_memcpy(want6, (const void*)vip_cfg.vip_addr, HELIOS_ADDR_LEN);
  return ctx->local_ip6[0] == want6[0] && ctx->local_ip6[1] == want6[1] &&
         ctx->local_ip6[2] == want6[2] && ctx->local_ip6[3] == want6[3];
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
