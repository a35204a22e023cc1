/* Socket-level helpers shared by the kernel data path programs (sockops, sk_msg, sk_skb):
 * constants vmlinux.h does not carry and the 4-tuple key in the ABI's IPv4-mapped form. */
#ifndef HELIOS_BPF_LIB_PG_SOCK_H
#define HELIOS_BPF_LIB_PG_SOCK_H

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET_ 2
#define AF_INET6_ 10

/* Writes an IPv4 address (network order, as the context holds it) as ::ffff:a.b.c.d. */
static __always_inline void sock_v4_mapped(__u8* dst, __u32 addr_be) {
  __builtin_memset(dst, 0, 10);
  dst[10] = 0xff;
  dst[11] = 0xff;
  __builtin_memcpy(dst + 12, &addr_be, 4);
}

static __always_inline void sock_v6_copy(__u8* dst, __u32 w0, __u32 w1, __u32 w2, __u32 w3) {
  __builtin_memcpy(dst, &w0, 4);
  __builtin_memcpy(dst + 4, &w1, 4);
  __builtin_memcpy(dst + 8, &w2, 4);
  __builtin_memcpy(dst + 12, &w3, 4);
}

/* The context's remote_port holds the network-order port in the upper half of a 32-bit word
 * (sock_ops and sk_msg alike); local_port is host order already. */
static __always_inline __u16 sock_remote_port_host(__u32 remote_port_field) {
  return (__u16)bpf_ntohl(remote_port_field);
}

/* Fills a struct sock_tuple_key from a sock_ops or sk_msg context (their fields have the same
 * names): SOCK_TUPLE_KEY is the context's own socket; SOCK_PEER_TUPLE_KEY the other end of the
 * same local connection (local and remote swapped), which is how the peer's socket is keyed. */
#define SOCK_FILL_TUPLE_(key, ctx, LO, RE)                                       \
  do {                                                                           \
    if ((ctx)->family == AF_INET_) {                                             \
      sock_v4_mapped((key)->LO##_addr, (ctx)->local_ip4);                        \
      sock_v4_mapped((key)->RE##_addr, (ctx)->remote_ip4);                       \
    } else {                                                                     \
      sock_v6_copy((key)->LO##_addr, (ctx)->local_ip6[0], (ctx)->local_ip6[1],   \
                   (ctx)->local_ip6[2], (ctx)->local_ip6[3]);                    \
      sock_v6_copy((key)->RE##_addr, (ctx)->remote_ip6[0], (ctx)->remote_ip6[1], \
                   (ctx)->remote_ip6[2], (ctx)->remote_ip6[3]);                  \
    }                                                                            \
    (key)->LO##_port = (__u16)(ctx)->local_port;                                 \
    (key)->RE##_port = sock_remote_port_host((ctx)->remote_port);                \
  } while (0)
#define SOCK_TUPLE_KEY(key, ctx) SOCK_FILL_TUPLE_(key, ctx, local, remote)
#define SOCK_PEER_TUPLE_KEY(key, ctx) SOCK_FILL_TUPLE_(key, ctx, remote, local)

/* True if `a` is a loopback address (127.0.0.0/8 as IPv4-mapped, or ::1). */
static __always_inline bool sock_is_loopback(const __u8* a) {
  bool v4 = true;
#pragma unroll
  for (int i = 0; i < 10; i++)
    if (a[i]) v4 = false;
  if (v4 && a[10] == 0xff && a[11] == 0xff) return a[12] == 127;
#pragma unroll
  for (int i = 0; i < 15; i++)
    if (a[i]) return false;
  return a[15] == 1;
}

static __always_inline bool sock_addr_eq(const __u8* a, const __u8* b) {
#pragma unroll
  for (int i = 0; i < 16; i++)
    if (a[i] != b[i]) return false;
  return true;
}

#endif /* HELIOS_BPF_LIB_PG_SOCK_H */
