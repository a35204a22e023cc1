// SPDX-License-Identifier: GPL-2.0
/* Lease splicing: the kernel data path for a client/backend pair.
 *
 * Both sockets of a lease sit in splice_socks (SOCKHASH keyed by socket cookie). For every skb
 * received on either socket, splice_verdict (sk_skb stream_verdict, no strparser) frames the
 * PostgreSQL messages in it (bpf/lib/pg_frame.bpf.h), then, under the lease's spin lock, decides:
 *   - forward: redirect the whole skb to the peer socket (egress) and count it; or
 *   - pass up: SK_PASS to the socket's own receive queue, where user space reads it.
 * A lease is ACTIVE until (a) a ReadyForQuery 'I' with nothing outstanding ends it in the kernel
 * (transaction/statement mode) -> ENDED; (b) a message the control plane must see (Terminate,
 * named Parse/Close when tracked, statements over the tenant's QPS tokens, ParameterStatus when
 * asked, anything unframeable) -> HANDED_BACK; (c) user space takes it back (splice_ctl_op).
 * Leaving ACTIVE is one transition under the lock, reported on the worker's ring buffer with the
 * lease's final counts. From then on every byte of both sockets goes to user space, and each
 * socket's splice_state.handback says at which framing position those bytes start.
 *
 * A direction is forwarded only once it is activated: on its first skb of the lease, and only if
 * user space has consumed every byte passed up to it before (passed_bytes == expect_passed).
 * Otherwise bytes raced to user space between its last read and splice(): the lease is handed
 * back at once (NOT_CAUGHT_UP), so user space never has to order its own writes against the
 * kernel's in the middle of a lease.
 *
 * Maps, fields and the hand-off rules: include/helios/bpf_abi.h, docs/datapath.md. */
#include "vmlinux.h"

#include "helios/bpf_abi.h"
#include "lib/pg_frame.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, HELIOS_SOCK_SPLICE_MAX_SOCKETS);
  __type(key, __u64);
  __type(value, __u64);
} splice_socks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, HELIOS_SOCK_SPLICE_MAX_SOCKETS);
  __type(key, __u64);
  __type(value, struct splice_ctl);
} splice_ctl SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, HELIOS_SOCK_SPLICE_MAX_SOCKETS);
  __type(key, __u64);
  __type(value, struct splice_sock_state);
} splice_state SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, HELIOS_SOCK_SPLICE_MAX_SOCKETS);
  __type(key, __u64);
  __type(value, struct splice_lease);
} splice_leases SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, HELIOS_SOCK_MAX_TENANTS);
  __type(key, __u32);
  __type(value, struct splice_tenant_counters);
} splice_tenants SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, HELIOS_SOCK_MAX_TENANTS);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, struct splice_qps_bucket);
} splice_qps SEC(".maps");

struct splice_event_ring {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, HELIOS_SOCK_EVENT_RING_BYTES);
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, HELIOS_SOCK_MAX_WORKERS);
  __type(key, __u32);
  __array(values, struct splice_event_ring);
} splice_events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct splice_stats);
} splice_stats SEC(".maps");

/* Scratch for the walk, per CPU and per nesting level: a verdict running in process context
 * (socket backlog) can be interrupted by a softirq verdict of another socket on the same CPU. */
#define SPLICE_MAX_NESTING 4
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, SPLICE_MAX_NESTING);
  __type(key, __u32);
  __type(value, struct pg_walk);
} splice_scratch SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} splice_depth SEC(".maps");

/* ---- message meaning ------------------------------------------------------------------- */

static __always_inline __u8 pg_frame_peek_for(struct pg_walk* w, __u8 type) {
  if (w->role == SPLICE_ROLE_BACKEND) return type == PG_READY_FOR_QUERY ? 1 : 0;
  if (!(w->flags & SPLICE_F_TRACK_NAMED)) return 0;
  if (type == PG_PARSE) return 1; /* first byte of the statement name ("" = unnamed) */
  if (type == PG_CLOSE) return 2; /* 'S'/'P', then the first byte of the name */
  return 0;
}

static __always_inline void pg_frame_classify(struct pg_walk* w, __u8 type) {
  if (w->role == SPLICE_ROLE_BACKEND) {
    if (type == PG_READY_FOR_QUERY) {
      w->rfq++;
      w->last_status = w->f.peek[0];
      if (w->f.peek[0] == 'I') w->rfq_idle++;
    } else if (type == PG_PARAMETER_STATUS && (w->flags & SPLICE_F_PARAMETER_STATUS)) {
      pg_walk_fail(w, SPLICE_R_PARAMETER_STATUS, type);
    }
    return; /* every other backend message is forwarded */
  }
  switch (type) {
    case PG_QUERY:
    case PG_FUNCTION_CALL:
      w->statements++;
      w->syncs++;
      break;
    case PG_SYNC:
      w->syncs++;
      w->unsynced_final = 0;
      break;
    case PG_EXECUTE:
      w->statements++;
      w->unsynced_final = 1;
      break;
    case PG_PARSE:
      w->unsynced_final = 1;
      if ((w->flags & SPLICE_F_TRACK_NAMED) && w->f.peek[0] != 0)
        pg_walk_fail(w, SPLICE_R_NAMED_STATEMENT, type);
      break;
    case PG_CLOSE:
      w->unsynced_final = 1;
      if ((w->flags & SPLICE_F_TRACK_NAMED) && (w->f.peek_have < 2 || w->f.peek[1] != 0))
        pg_walk_fail(w, SPLICE_R_NAMED_STATEMENT, type);
      break;
    case PG_BIND:
    case PG_DESCRIBE:
    case PG_FLUSH:
      w->unsynced_final = 1;
      break;
    case PG_COPY_DATA:
    case PG_COPY_DONE:
    case PG_COPY_FAIL:
      break;
    case PG_TERMINATE:
      pg_walk_fail(w, SPLICE_R_TERMINATE, type);
      break;
    default:
      pg_walk_fail(w, SPLICE_R_UNKNOWN_MESSAGE, type);
      break;
  }
}

/* ---- helpers ----------------------------------------------------------------------------- */

static __always_inline struct splice_stats* stats(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&splice_stats, &zero);
}

enum decision { DECIDE_PASS = 0, DECIDE_FORWARD = 1 };

/* A copy of the lease taken under the lock, for the event. */
struct lease_snap {
  __u64 queries, transactions, to_backend, to_client;
  __u32 state, reason, seq, tenant_id, outstanding, unsynced;
  __u16 worker;
  __u8 tx_status;
  __u8 emit; /* 0 none, else enum splice_event_kind */
};

static __always_inline void snap_lease(struct lease_snap* s, const struct splice_lease* l) {
  s->queries = l->queries;
  s->transactions = l->transactions;
  s->to_backend = l->bytes_to_backend;
  s->to_client = l->bytes_to_client;
  s->state = l->state;
  s->reason = l->reason;
  s->seq = l->seq;
  s->tenant_id = l->tenant_id;
  s->outstanding = l->outstanding;
  s->unsynced = l->unsynced;
  s->worker = l->worker;
  s->tx_status = l->tx_status;
}

static __always_inline void emit_event(const struct lease_snap* s, __u64 lease_id, __u64 cookie,
                                       __u8 role, __u8 msg_type) {
  __u32 wk = s->worker;
  struct splice_stats* st = stats();
  void* ring = bpf_map_lookup_elem(&splice_events, &wk);
  if (!ring) {
    if (st) st->events_lost++;
    return;
  }
  struct splice_event ev = {};
  ev.lease_id = lease_id;
  ev.cookie = cookie;
  ev.ts_ns = bpf_ktime_get_ns();
  ev.queries = s->queries;
  ev.transactions = s->transactions;
  ev.bytes_to_backend = s->to_backend;
  ev.bytes_to_client = s->to_client;
  ev.kind = s->emit;
  ev.reason = s->reason;
  ev.lease_seq = s->seq;
  ev.tenant_id = s->tenant_id;
  ev.outstanding = s->outstanding;
  ev.unsynced = s->unsynced;
  ev.role = role;
  ev.tx_status = s->tx_status;
  ev.msg_type = msg_type;
  if (bpf_ringbuf_output(ring, &ev, sizeof(ev), 0) && st) st->events_lost++;
}

static __always_inline __u32 event_kind_for(__u32 reason) {
  if (reason == SPLICE_R_READY_IDLE) return SPLICE_EV_LEASE_ENDED;
  if (reason == SPLICE_R_BAD_LENGTH || reason == SPLICE_R_WALK_LIMIT)
    return SPLICE_EV_FRAMING_ERROR;
  return SPLICE_EV_HANDED_BACK;
}

/* Takes n QPS tokens of the tenant, all or none. */
static __always_inline bool take_tokens(__u32 tenant, __u32 n) {
  struct splice_qps_bucket* b = bpf_map_lookup_elem(&splice_qps, &tenant);
  if (!b) return false;
  __s64 want = n;
  __s64 before = __sync_fetch_and_add(&b->tokens, -want);
  if (before >= want) {
    __sync_fetch_and_add(&b->taken, n);
    return true;
  }
  __sync_fetch_and_add(&b->tokens, want); /* give them back */
  return false;
}

static __always_inline void give_tokens(__u32 tenant, __u32 n) {
  struct splice_qps_bucket* b = bpf_map_lookup_elem(&splice_qps, &tenant);
  if (!b) return;
  __sync_fetch_and_add(&b->tokens, (__s64)n);
  __sync_fetch_and_add(&b->taken, -(__s64)n);
}

/* Hands the lease back (or ends it) under the lock: one transition out of ACTIVE. */
static __always_inline void leave_active(struct splice_lease* l, struct lease_snap* s, __u32 state,
                                         __u32 reason) {
  l->state = state;
  l->reason = reason;
  snap_lease(s, l);
  s->emit = (__u8)event_kind_for(reason);
}

/* ---- the verdict -------------------------------------------------------------------------- */

static __noinline int verdict_body(struct __sk_buff* skb, struct pg_walk* w) {
  if (!skb || !w) return SK_PASS;
  struct splice_stats* gs = stats();
  __u32 len = skb->len;
  if (gs) {
    gs->skbs++;
    gs->bytes += len;
  }
  /* A FIN comes as an skb with no bytes. Redirected, it breaks the peer: the psock transmit
   * treats a zero-byte send as a broken pipe and sets EPIPE on the peer socket. Passed up, it
   * is the end of stream that user space's recv reports. There is nothing in it to frame. */
  if (len == 0) return SK_PASS;
  __u64 cookie = bpf_get_socket_cookie(skb);
  struct splice_ctl* ctl = bpf_map_lookup_elem(&splice_ctl, &cookie);
  struct splice_sock_state* st = bpf_map_lookup_elem(&splice_state, &cookie);
  if (!ctl || !st) {
    if (gs) gs->no_state++;
    return SK_PASS;
  }
  st->rx_bytes += len;
  st->skbs++;

  __u64 lease_id = ctl->lease_id;
  __u64 peer_cookie = ctl->peer_cookie;
  __u32 seq = ctl->lease_seq;
  __u32 tenant = ctl->tenant_id;
  __u32 flags = ctl->flags;
  __u8 role = ctl->role;
  __u64 expect_passed = ctl->expect_passed;
  struct splice_lease* lease = lease_id ? bpf_map_lookup_elem(&splice_leases, &lease_id) : 0;
  struct splice_sock_state* peer_st = bpf_map_lookup_elem(&splice_state, &peer_cookie);

  /* Framing position at the start of this skb: reset to a boundary on activation (user space
   * only splices at a message boundary and proves it has consumed everything before). */
  bool was_active = st->active && st->active_seq == seq;
  __builtin_memset(w, 0, sizeof(*w));
  w->len = len;
  w->role = role;
  w->flags = flags;
  w->unsynced_final = -1;
  if (was_active) w->f = st->frame;

  /* Walk only when the lease could be forwarded: a passed-up skb needs no framing. */
  bool candidate = lease && peer_st && !(role == SPLICE_ROLE_CLIENT && (flags & SPLICE_F_CLIENT_UP));
  if (candidate) {
    struct pg_walk_ctx wc = {skb, w};
    bpf_loop(PG_FRAME_MAX_STEPS, pg_frame_step, &wc, 0);
    if (!w->stop && w->off < len) pg_walk_fail(w, SPLICE_R_WALK_LIMIT, 0); /* budget spent */
  }
  bool end_at_boundary = pg_frame_at_boundary(&w->f) && w->off >= len;

  bool qps_taken = false;
  if (candidate && !w->reason && role == SPLICE_ROLE_CLIENT && (flags & SPLICE_F_QPS) &&
      w->statements) {
    qps_taken = take_tokens(tenant, w->statements);
    if (!qps_taken) pg_walk_fail(w, SPLICE_R_QPS_EMPTY, PG_QUERY);
  }

  struct lease_snap snap = {};
  enum decision d = DECIDE_PASS;
  bool activated = false, refused = false;
  if (candidate) {
    bpf_spin_lock(&lease->lock);
    if (lease->seq == seq && lease->state == SPLICE_LEASE_ACTIVE) {
      bool ok = was_active;
      if (!was_active) {
        if (st->passed_bytes == expect_passed) {
          ok = true;
          activated = true;
        } else {
          refused = true;
          leave_active(lease, &snap, SPLICE_LEASE_HANDED_BACK, SPLICE_R_NOT_CAUGHT_UP);
        }
      }
      if (ok && w->reason) {
        leave_active(lease, &snap, SPLICE_LEASE_HANDED_BACK, w->reason);
      } else if (ok && role == SPLICE_ROLE_CLIENT) {
        lease->outstanding += w->syncs;
        if (w->unsynced_final >= 0) lease->unsynced = (__u32)w->unsynced_final;
        lease->client_mid = end_at_boundary ? 0 : 1;
        lease->queries += w->statements;
        lease->bytes_to_backend += len;
        peer_st->redirected_in += len;
        d = DECIDE_FORWARD;
      } else if (ok) { /* backend */
        if (w->rfq > lease->outstanding) {
          leave_active(lease, &snap, SPLICE_LEASE_HANDED_BACK, SPLICE_R_PROTOCOL);
        } else {
          /* The transaction ended: the user-space twin is transaction_ended() && lease_quiet()
           * in userspace/proxy/client.h. */
          bool ends = w->rfq && lease->outstanding == w->rfq && w->last_status == 'I' &&
                      !lease->unsynced && !lease->client_mid && lease->mode != SPLICE_MODE_SESSION;
          bool last = w->rfq_end == len && end_at_boundary;
          /* Statement mode: a statement that leaves a transaction open is the proxy's to
           * refuse; that ReadyForQuery goes up. */
          bool txn_open = w->rfq && lease->outstanding == w->rfq && w->last_status != 'I' &&
                          lease->mode == SPLICE_MODE_STATEMENT;
          if (txn_open) {
            leave_active(lease, &snap, SPLICE_LEASE_HANDED_BACK, SPLICE_R_TXN_OPEN);
          } else if (ends && !last) {
            leave_active(lease, &snap, SPLICE_LEASE_HANDED_BACK, SPLICE_R_BYTES_AFTER_END);
          } else {
            lease->outstanding -= w->rfq;
            if (w->rfq) lease->tx_status = w->last_status;
            lease->transactions += w->rfq_idle;
            lease->bytes_to_client += len;
            peer_st->redirected_in += len;
            d = DECIDE_FORWARD;
            if (ends) leave_active(lease, &snap, SPLICE_LEASE_ENDED, SPLICE_R_READY_IDLE);
          }
        }
      }
    }
    bpf_spin_unlock(&lease->lock);
  }

  if (snap.emit) emit_event(&snap, lease_id, cookie, role, w->reason_type);
  if (gs) {
    if (activated) gs->activations++;
    if (refused) gs->activations_refused++;
  }

  if (d == DECIDE_FORWARD) {
    long r = bpf_sk_redirect_hash(skb, &splice_socks, &peer_cookie, 0);
    if (r == SK_PASS) {
      if (tenant < HELIOS_SOCK_MAX_TENANTS) {
        struct splice_tenant_counters* tc = bpf_map_lookup_elem(&splice_tenants, &tenant);
        if (tc) {
          if (role == SPLICE_ROLE_CLIENT) {
            tc->queries += w->statements;
            tc->bytes_to_backend += len;
          } else {
            tc->transactions += w->rfq_idle;
            tc->bytes_to_client += len;
            if (snap.emit == SPLICE_EV_LEASE_ENDED) tc->leases_ended++;
          }
        }
      }
      st->frame = w->f;
      st->active = 1;
      st->active_seq = seq;
      st->forwarded_bytes += len;
      if (gs) gs->forwarded_skbs++;
      return SK_PASS;
    }
    /* The peer left the map (closed): the bytes go up instead and the lease is handed back.
     * The lease's counts of this one skb were applied under the lock already; they stay. */
    if (gs) gs->redirect_failed++;
    struct lease_snap s2 = {};
    if (lease) {
      bpf_spin_lock(&lease->lock);
      if (lease->seq == seq && lease->state == SPLICE_LEASE_ACTIVE)
        leave_active(lease, &s2, SPLICE_LEASE_HANDED_BACK, SPLICE_R_REDIRECT_FAILED);
      bpf_spin_unlock(&lease->lock);
    }
    if (s2.emit) emit_event(&s2, lease_id, cookie, role, 0);
  } else if (qps_taken) {
    give_tokens(tenant, w->statements);
  }

  /* Pass up. If this direction was forwarded by the kernel, record where the bytes user space
   * now gets start in the message stream. */
  if (snap.emit && tenant < HELIOS_SOCK_MAX_TENANTS) {
    struct splice_tenant_counters* tc = bpf_map_lookup_elem(&splice_tenants, &tenant);
    if (tc) {
      if (snap.emit != SPLICE_EV_LEASE_ENDED) tc->handbacks++;
      if (w->reason == SPLICE_R_QPS_EMPTY) tc->qps_refused++;
    }
  }
  if (st->active) {
    /* st->frame is the position after the last forwarded skb: where this one starts. */
    st->active = 0;
    st->handback = st->frame;
    st->handback_at = st->passed_bytes;
    st->handbacks++;
    st->reason = snap.reason ? snap.reason : (lease ? lease->reason : SPLICE_R_USER);
  }
  st->passed_bytes += len;
  if (gs) gs->passed_skbs++;
  return SK_PASS;
}

SEC("sk_skb/stream_verdict")
int splice_verdict(struct __sk_buff* skb) {
  __u32 zero = 0;
  __u32* depth = bpf_map_lookup_elem(&splice_depth, &zero);
  if (!depth) return SK_PASS;
  __u32 slot = *depth;
  struct pg_walk* w = 0;
  if (slot < SPLICE_MAX_NESTING) w = bpf_map_lookup_elem(&splice_scratch, &slot);
  *depth = slot + 1;
  int verdict = verdict_body(skb, w);
  *depth = slot;
  return verdict;
}

/* ---- control operations from user space (BPF_PROG_TEST_RUN) ------------------------------ */

SEC("tc")
int splice_ctl_op(struct __sk_buff* skb) {
  void* data = (void*)(long)skb->data;
  void* end = (void*)(long)skb->data_end;
  struct splice_op* op = data;
  if ((void*)(op + 1) > end) return 0;
  __u64 id = op->lease_id;
  struct splice_lease* l = bpf_map_lookup_elem(&splice_leases, &id);
  if (!l) {
    op->result = 1;
    return 0;
  }
  struct lease_snap s = {};
  __u32 prev, state, outstanding, unsynced, client_mid, reason, lseq;
  __u8 tx;
  bpf_spin_lock(&l->lock);
  prev = l->state;
  lseq = l->seq;
  if (op->code == SPLICE_OP_UNSPLICE && lseq == op->seq && prev == SPLICE_LEASE_ACTIVE)
    leave_active(l, &s, SPLICE_LEASE_HANDED_BACK, SPLICE_R_USER);
  state = l->state;
  outstanding = l->outstanding;
  unsynced = l->unsynced;
  client_mid = l->client_mid;
  reason = l->reason;
  tx = l->tx_status;
  bpf_spin_unlock(&l->lock);
  op->result = lseq == op->seq ? 0 : 2;
  op->prev_state = prev;
  op->state = state;
  op->outstanding = outstanding;
  op->unsynced = unsynced;
  op->client_mid = client_mid;
  op->reason = reason;
  op->tx_status = tx;
  /* No event for a user-requested hand-back: the caller has the answer already. */
  return 0;
}
