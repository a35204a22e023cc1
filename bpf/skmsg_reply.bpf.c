// SPDX-License-Identifier: GPL-2.0
/* sk_msg reply path (issue 18 item 3), a component under measurement: not wired into the proxy.
 *
 * skmsg_sockops (sockops, on a cgroup v2): when a local PostgreSQL accepts a connection
 * (passive established, local port == skmsg_config.db_port, peer on this host), its socket goes
 * into skmsg_socks keyed by its 4-tuple.
 *
 * skmsg_reply (sk_msg, on skmsg_socks): runs inside PostgreSQL's own sendmsg. If the socket has
 * a route to a lease slot (skmsg_routes) and the slot is ARMED, it walks the PostgreSQL messages
 * of the msg (framing position kept in the slot across sendmsg calls) and redirects the bytes
 * to the EGRESS of the slot's client socket (skmsg_targets[slot]): no work item, the bytes enter
 * the client's TCP send queue before PostgreSQL's sendmsg returns. The ReadyForQuery 'I' ends the
 * lease: the slot is disarmed, and if bytes follow it in the same msg they are cut off with
 * bpf_msg_apply_bytes (the program runs again for them and passes them: normal TCP to the
 * relay). A msg with more than HELIOS_SKMSG_MAX_WALK framing steps is cut the same way.
 *
 * skmsg_send_done (raw tracepoint sock:sock_send_length, after every sendmsg): a redirect into
 * a full client send buffer fails part-way and PostgreSQL sends the dropped bytes again; this
 * counts them in the slot so that skmsg_reply redirects them again without framing them twice
 * (and redoes a lease end whose 'I' was among them).
 *
 * Maps and fields: include/helios/bpf_abi.h (sk_msg reply path) and docs/datapath.md. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>

#include "helios/bpf_abi.h"
#include "lib/pg_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define PG_READY_FOR_QUERY 'Z'

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, HELIOS_SKMSG_MAX_SOCKETS);
  __type(key, struct sock_tuple_key);
  __type(value, __u64);
} skmsg_socks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, HELIOS_SKMSG_MAX_LEASES);
  __type(key, __u32);
  __type(value, __u64);
} skmsg_targets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, HELIOS_SKMSG_MAX_SOCKETS);
  __type(key, struct sock_tuple_key);
  __type(value, __u32);
} skmsg_routes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, HELIOS_SKMSG_MAX_LEASES);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, struct skmsg_lease);
} skmsg_leases SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct skmsg_config);
} skmsg_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct skmsg_stats);
} skmsg_stats SEC(".maps");

static __always_inline struct skmsg_stats* stats(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&skmsg_stats, &zero);
}

SEC("sockops")
int skmsg_sockops(struct bpf_sock_ops* skops) {
  if (skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) return 1;
  __u32 family = skops->family;
  if (family != AF_INET_ && family != AF_INET6_) return 1;
  __u32 zero = 0;
  struct skmsg_config* cfg = bpf_map_lookup_elem(&skmsg_config, &zero);
  if (!cfg || !cfg->db_port || (__u16)skops->local_port != cfg->db_port) return 1;

  struct sock_tuple_key key = {};
  SOCK_TUPLE_KEY(&key, skops);
  if (!sock_is_loopback(key.remote_addr) && !sock_addr_eq(key.remote_addr, key.local_addr))
    return 1;
  if (bpf_sock_hash_update(skops, &skmsg_socks, &key, BPF_NOEXIST) == 0) {
    struct skmsg_stats* st = stats();
    if (st) st->added++;
  }
  return 1;
}

/* ---- failed redirects (client send buffer full) ------------------------------------------- */

/* After every sendmsg (tracepoint sock:sock_send_length; this kernel has neither kprobes nor
 * BPF trampolines): on a routed PostgreSQL socket, the bytes the program redirected during the
 * call (`call_bytes`) against what the call reported sent. A redirect into a full client send
 * buffer fails part-way (tcp_bpf_push -EAGAIN: PostgreSQL's socket is non-blocking); the kernel
 * drops the rest of the msg and reports a short write, so the sent bytes are a prefix and the
 * difference is what PostgreSQL will send again: redirected once more, not framed twice. */
SEC("raw_tp/sock_send_length")
int skmsg_send_done(struct bpf_raw_tracepoint_args* ctx) {
  struct sock* sk = (struct sock*)ctx->args[0];
  int ret = (int)ctx->args[1];
  __u32 zero = 0;
  struct skmsg_config* cfg = bpf_map_lookup_elem(&skmsg_config, &zero);
  if (!sk || !cfg || !cfg->db_port) return 0;
  __u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
  if (lport != cfg->db_port) return 0;
  struct sock_tuple_key key = {};
  __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
  if (family == AF_INET_) {
    sock_v4_mapped(key.local_addr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
    sock_v4_mapped(key.remote_addr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
  } else if (family == AF_INET6_) {
    BPF_CORE_READ_INTO(&key.local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
    BPF_CORE_READ_INTO(&key.remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
  } else {
    return 0;
  }
  key.local_port = lport;
  key.remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
  __u32* slot = bpf_map_lookup_elem(&skmsg_routes, &key);
  if (!slot) return 0;
  __u32 s = *slot;
  struct skmsg_lease* l = bpf_map_lookup_elem(&skmsg_leases, &s);
  if (!l) return 0;
  __u32 redirected = l->call_bytes;
  __u8 ended = l->ended_in_call;
  l->call_bytes = 0;
  l->ended_in_call = 0;
  __u32 sent = ret > 0 ? (__u32)ret : 0;
  if (redirected > sent) {
    __u32 dropped = redirected - sent;
    l->replay += dropped;
    l->bytes -= dropped;
    struct skmsg_stats* st = stats();
    if (st) st->redirect_errors++;
    if (ended) { /* the 'I' did not reach the client: the lease is not over yet */
      l->end_after_replay = 1;
      __sync_fetch_and_add(&l->ended, -1);
      if (st) {
        st->rfq_idle--;
        st->ends_redone++;
      }
      l->state = SKMSG_ARMED;
    }
  }
  return 0;
}

/* The walk over one msg, a bpf_loop context on the stack. */
struct walk {
  struct sk_msg_md* msg;
  struct skmsg_lease* l;
  __u32 off;  /* msg bytes walked */
  __u32 size; /* msg bytes */
  __u32 base; /* msg offset that msg->data points at (moved by bpf_msg_pull_data) */
  __u32 end;  /* offset just after the ReadyForQuery 'I' that ends the lease; 0 = none */
  __u32 pulls;
  __u32 error;
};

/* Copies n (1-5) msg bytes at off into out, pulling them into the linear window if needed. */
static __always_inline int msg_bytes(struct walk* w, __u32 off, __u32 n, __u8* out) {
  struct sk_msg_md* msg = w->msg;
  __u32 rel = off - w->base;
  void* data = (void*)(long)msg->data;
  void* data_end = (void*)(long)msg->data_end;
  if (off < w->base || rel > 0x7fff || data + rel + n > data_end) {
    if (bpf_msg_pull_data(msg, off, off + n, 0)) return -1;
    w->base = off;
    w->pulls++;
    rel = 0;
    data = (void*)(long)msg->data;
    data_end = (void*)(long)msg->data_end;
  }
  __u64 r = rel;
  asm volatile("%0 &= 0x7fff" : "+r"(r)); /* a bound the verifier sees on every path */
  __u8* p = data + r;
#pragma unroll
  for (int k = 0; k < 5; k++) {
    if (k < n) {
      if ((void*)(p + k + 1) > data_end) return -1;
      out[k] = p[k];
    }
  }
  return 0;
}

static long walk_step(__u64 i, void* ctx) {
  struct walk* w = ctx;
  struct skmsg_lease* l = w->l;
  __u32 off = w->off, size = w->size;
  if (off >= size) return 1;
  __u32 left = l->msg_left;
  bool status_next = left == 1 && l->cur_type == PG_READY_FOR_QUERY;
  if (left && !status_next) { /* skip (the rest of) a body: one step, any size */
    __u32 skip = size - off;
    if (skip > left) skip = left;
    l->msg_left = left - skip;
    w->off = off + skip;
    return 0;
  }
  __u8 b[5] = {};
  if (status_next) { /* the ReadyForQuery's status byte */
    if (msg_bytes(w, off, 1, b)) {
      w->error = 1;
      return 1;
    }
    l->msg_left = 0;
    l->last_status = b[0];
    l->rfq++;
    w->off = off + 1;
    if (b[0] == 'I') {
      w->end = off + 1;
      return 1;
    }
    return 0;
  }
  /* a header, or the rest of one split by the previous sendmsg */
  __u32 have = l->hdr_have;
  if (have > 4) have = 4;
  __u32 want = 5 - have;
  if (want > size - off) want = size - off;
  if (want > 5) want = 5;
  if (msg_bytes(w, off, want, b)) {
    w->error = 1;
    return 1;
  }
#pragma unroll
  for (int k = 0; k < 5; k++) {
    __u32 at = have + k;
    if (k < want && at < 5) l->hdr[at] = b[k];
  }
  w->off = off + want;
  have += want;
  if (have < 5) {
    l->hdr_have = have;
    return 0;
  }
  l->hdr_have = 0;
  __u32 len = ((__u32)l->hdr[1] << 24) | ((__u32)l->hdr[2] << 16) | ((__u32)l->hdr[3] << 8) |
              (__u32)l->hdr[4];
  if (len < 4 || (l->hdr[0] == PG_READY_FOR_QUERY && len != 5)) {
    w->error = 1;
    return 1;
  }
  l->cur_type = l->hdr[0];
  l->msg_left = len - 4;
  l->msgs++;
  return 0;
}

SEC("sk_msg")
int skmsg_reply(struct sk_msg_md* msg) {
  /* The kernel copies msg->apply_bytes into the psock after every run and does not clear it
   * when it runs the program again on the rest of a cut msg: a cut's length would otherwise
   * stick to the next verdict (a pass of the rest would then also cover the next sendmsg's
   * first bytes, unseen). Every run states its own. */
  bpf_msg_apply_bytes(msg, 0);
  struct skmsg_stats* st = stats();
  if (!st) return SK_PASS;
  st->runs++;

  struct sock_tuple_key key = {};
  SOCK_TUPLE_KEY(&key, msg);
  __u32* slot = bpf_map_lookup_elem(&skmsg_routes, &key);
  if (!slot) {
    st->passed++;
    return SK_PASS;
  }
  __u32 s = *slot;
  struct skmsg_lease* l = bpf_map_lookup_elem(&skmsg_leases, &s);
  if (!l || l->state != SKMSG_ARMED) {
    st->passed++;
    return SK_PASS;
  }

  /* The first `replay` bytes were framed already: a failed redirect dropped them and
   * PostgreSQL is sending them again. */
  __u32 replay = l->replay;
  struct walk w = {.msg = msg, .l = l, .size = msg->size};
  w.off = replay < w.size ? replay : w.size;
  if (replay && l->end_after_replay) {
    /* The dropped bytes ended with the ReadyForQuery 'I' that ended the lease. */
    if (replay <= w.size) w.end = replay;
  } else {
    bpf_loop(HELIOS_SKMSG_MAX_WALK, walk_step, &w, 0);
  }
  st->pulls += w.pulls;
  if (w.error) { /* not a PostgreSQL stream we can follow: hand everything to the relay */
    l->error = 1;
    l->state = SKMSG_IDLE;
    st->framing_errors++;
    st->passed++;
    return SK_PASS;
  }
  __u32 n = w.end ? w.end : w.off;
  if (n < w.size) {
    bpf_msg_apply_bytes(msg, n);
    st->split++;
  }
  if (bpf_msg_redirect_map(msg, &skmsg_targets, s, 0) != SK_PASS) {
    /* No client socket in the slot: nothing was promised to anyone, the relay gets it. The
     * framing already moved past these bytes, so the lease cannot be followed any more. */
    l->state = SKMSG_IDLE;
    st->redirect_failed++;
    return SK_PASS;
  }
  __u32 again = n < replay ? n : replay;
  l->replay = replay - again;
  l->replayed += again;
  l->bytes += n;
  l->call_bytes += n;
  st->redirected++;
  st->bytes_redirected += n;
  st->replayed_bytes += again;
  if (w.end) {
    l->state = SKMSG_IDLE;
    l->end_after_replay = 0;
    l->ended_in_call = 1;
    __sync_fetch_and_add(&l->ended, 1);
    st->rfq_idle++;
  }
  return SK_PASS;
}
