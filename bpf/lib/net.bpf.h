/* Packet parsing helpers shared by the XDP programs: constants vmlinux.h does not carry (they are
 * macros in the UAPI headers) and bounds-checked header access. */
#ifndef HELIOS_BPF_LIB_NET_H
#define HELIOS_BPF_LIB_NET_H

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_TCP_ 6
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_ESP_ 50
#define IPPROTO_AH_ 51
#define IPPROTO_DSTOPTS_ 60

#define IP_MF_ 0x2000
#define IP_OFFSET_ 0x1FFF

#define TCP_FLAG_SYN_ 0x02
#define TCP_FLAG_ACK_ 0x10

struct vlan_hdr_ {
  __be16 tci;
  __be16 encapsulated_proto;
};

struct ipv6_opt_hdr_ {
  __u8 nexthdr;
  __u8 hdrlen; /* in 8-octet units, not counting the first 8 */
};

/* Cursor over a linear packet: every access is checked against data_end before use. */
struct cursor {
  void* pos;
  void* end;
};

/* Returns a pointer to `len` bytes at the cursor and advances it, or NULL when the packet is
 * shorter. `len` must be a verifier-known constant. */
#define CURSOR_TAKE(c, type)                                  \
  ({                                                          \
    type* _p = (type*)(c)->pos;                               \
    if ((void*)(_p + 1) > (c)->end) _p = (type*)0;            \
    else (c)->pos = (void*)(_p + 1);                          \
    _p;                                                       \
  })

#endif /* HELIOS_BPF_LIB_NET_H */
