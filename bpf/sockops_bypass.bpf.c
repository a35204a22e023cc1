// SPDX-License-Identifier: GPL-2.0
/* Same-host bypass for local hops to and from the proxy (its listen address, the database).
 *
 * bypass_sockops (sockops, on a cgroup v2): when a TCP connection becomes established in the
 * network namespace the bypass was attached from (netns_cookie), if its local or remote endpoint
 * is one of bypass_endpoints (the proxy's listen address, the database address) and the peer is
 * on this host, the socket goes into bypass_socks keyed by its 4-tuple. The namespace check keeps
 * the map's 4-tuples unique: another namespace (a container) has its own 127.0.0.1 and ports, so
 * its connections could otherwise share a key with ours and be redirected into them. Both ends of
 * such a connection are established inside the cgroup, so both end up in the map. Every other
 * socket is left alone.
 *
 * bypass_msg (sk_msg, on bypass_socks): runs on sendmsg of a socket in the map. It looks up the
 * peer socket (the same 4-tuple reversed) and delivers the data straight into the peer's receive
 * queue (BPF_F_INGRESS): no loopback TCP segments, no softirq. When the peer is not in the map
 * (e.g. it was established before the program was attached) the data takes the normal TCP path.
 *
 * Maps and fields: include/helios/bpf_abi.h and docs/datapath.md. */
#include "vmlinux.h"

#include "helios/bpf_abi.h"
#include "lib/pg_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* The attaching process's network namespace (SO_NETNS_COOKIE), set before load; 0 = any. */
const volatile __u64 netns_cookie = 0;

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, HELIOS_SOCK_BYPASS_MAX_SOCKETS);
  __type(key, struct sock_tuple_key);
  __type(value, __u64);
} bypass_socks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, HELIOS_SOCK_BYPASS_MAX_ENDPOINTS);
  __type(key, struct sock_endpoint_key);
  __type(value, struct sock_endpoint_value);
} bypass_endpoints SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct sock_bypass_stats);
} bypass_stats SEC(".maps");

static __always_inline struct sock_bypass_stats* stats(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&bypass_stats, &zero);
}

/* Listed as addr:port, or as any-address:port. */
static __always_inline bool endpoint_listed(const __u8* addr, __u16 port) {
  struct sock_endpoint_key k = {};
  __builtin_memcpy(k.addr, addr, HELIOS_ADDR_LEN);
  k.port = port;
  if (bpf_map_lookup_elem(&bypass_endpoints, &k)) return true;
  __builtin_memset(k.addr, 0, HELIOS_ADDR_LEN);
  return bpf_map_lookup_elem(&bypass_endpoints, &k) != 0;
}

SEC("sockops")
int bypass_sockops(struct bpf_sock_ops* skops) {
  __u32 op = skops->op;
  if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
    return 1;
  __u32 family = skops->family;
  if (family != AF_INET_ && family != AF_INET6_) return 1;
  if (netns_cookie && bpf_get_netns_cookie(skops) != netns_cookie) return 1;
  struct sock_bypass_stats* st = stats();
  if (!st) return 1;
  st->established++;

  struct sock_tuple_key key = {};
  SOCK_TUPLE_KEY(&key, skops);

  if (!endpoint_listed(key.local_addr, key.local_port) &&
      !endpoint_listed(key.remote_addr, key.remote_port))
    return 1;
  if (!sock_is_loopback(key.remote_addr) && !sock_addr_eq(key.remote_addr, key.local_addr)) {
    st->not_local++;
    return 1;
  }
  if (bpf_sock_hash_update(skops, &bypass_socks, &key, BPF_NOEXIST) == 0)
    st->added++;
  else
    st->add_failed++;
  return 1;
}

SEC("sk_msg")
int bypass_msg(struct sk_msg_md* msg) {
  struct sock_tuple_key peer = {};
  SOCK_PEER_TUPLE_KEY(&peer, msg);
  __u32 size = msg->size;

  struct sock_bypass_stats* st = stats();
  /* SK_DROP from the helper only means "no such peer in the map": then send normally. */
  if (bpf_msg_redirect_hash(msg, &bypass_socks, &peer, BPF_F_INGRESS) == SK_PASS) {
    if (st) {
      st->msgs_redirected++;
      st->bytes_redirected += size;
    }
  } else if (st) {
    st->msgs_passed++;
  }
  return SK_PASS;
}
