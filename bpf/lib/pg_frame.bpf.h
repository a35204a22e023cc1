/* PostgreSQL message framing inside an sk_skb verdict, without strparser.
 *
 * A stream is a sequence of messages: 1 type byte, a 4-byte big-endian length (which counts
 * itself but not the type byte), then length - 4 body bytes. An skb may end anywhere: inside a
 * header, inside a body, between messages. The position is carried across skbs in a
 * struct splice_frame (include/helios/bpf_abi.h): body bytes left, the partial header, and the
 * first body bytes of the current message when its classification needs them (the status of a
 * ReadyForQuery, the statement name of a Parse/Close).
 *
 * The walk is a bpf_loop over steps; each step either skips the rest of a body (one step, any
 * size: a 1 GiB DataRow costs one step per skb), reads one byte the classification needs, or
 * reads a header. Headers are capped at HELIOS_SOCK_MAX_WALK per skb.
 *
 * What a message means is decided by the caller's classify(w) (a macro-free callback would not
 * pass the verifier cheaply): this header only moves the position and calls pg_frame_classify()
 * and pg_frame_message_end(), which the including program defines. */
#ifndef HELIOS_BPF_LIB_PG_FRAME_H
#define HELIOS_BPF_LIB_PG_FRAME_H

#include <bpf/bpf_helpers.h>

#include "helios/bpf_abi.h"

/* PostgreSQL message types (protocol 3.0) the verdict looks at. */
#define PG_QUERY 'Q'
#define PG_PARSE 'P'
#define PG_BIND 'B'
#define PG_EXECUTE 'E'
#define PG_DESCRIBE 'D'
#define PG_CLOSE 'C'
#define PG_SYNC 'S'
#define PG_FLUSH 'H'
#define PG_FUNCTION_CALL 'F'
#define PG_TERMINATE 'X'
#define PG_COPY_DATA 'd'
#define PG_COPY_DONE 'c'
#define PG_COPY_FAIL 'f'
#define PG_READY_FOR_QUERY 'Z'
#define PG_PARAMETER_STATUS 'S'

/* The walk's state lives in a per-CPU map slot, not on the stack: values loaded from a map are
 * unknown to the verifier, so the bpf_loop callback verifies in a few passes instead of tracking
 * every (offset, length, count) combination until it gives up. */
struct pg_walk {
  __u32 off;
  __u32 len;
  struct splice_frame f;
  /* configuration */
  __u8 role;
  __u8 pad0[3];
  __u32 flags;
  /* results */
  __u32 statements;     /* Query, Execute, FunctionCall */
  __u32 syncs;          /* Query, Sync, FunctionCall: each gets one ReadyForQuery */
  __s32 unsynced_final; /* -1 unchanged, 0 Sync seen last, 1 extended message seen last */
  __u32 rfq;            /* ReadyForQuery messages */
  __u32 rfq_idle;       /* ... with status 'I' */
  __u32 rfq_end;        /* offset just after the last complete ReadyForQuery */
  __u8 last_status;
  __u8 reason_type; /* message type that caused `reason` */
  __u8 stop;
  __u8 pad1;
  __u32 reason; /* enum splice_reason: hand this skb to user space */
};

/* bpf_loop context (on the stack): just the two pointers. */
struct pg_walk_ctx {
  struct __sk_buff* skb;
  struct pg_walk* w;
};

static __always_inline bool pg_frame_at_boundary(const struct splice_frame* f) {
  return f->msg_left == 0 && f->hdr_have == 0 && f->peek_need == f->peek_have;
}

static __always_inline void pg_walk_fail(struct pg_walk* w, __u32 reason, __u8 type) {
  if (!w->reason) {
    w->reason = reason;
    w->reason_type = type;
  }
  w->stop = 1;
}

/* Defined by the including program. */
static __always_inline void pg_frame_classify(struct pg_walk* w, __u8 type);
static __always_inline __u8 pg_frame_peek_for(struct pg_walk* w, __u8 type);

static __always_inline void pg_frame_message_end(struct pg_walk* w) {
  if (w->role == SPLICE_ROLE_BACKEND && w->f.type == PG_READY_FOR_QUERY) w->rfq_end = w->off;
}

static __always_inline void pg_frame_header_done(struct pg_walk* w) {
  struct splice_frame* f = &w->f;
  __u32 mlen = ((__u32)f->hdr[1] << 24) | ((__u32)f->hdr[2] << 16) | ((__u32)f->hdr[3] << 8) |
               (__u32)f->hdr[4];
  __u8 type = f->hdr[0];
  f->hdr_have = 0;
  if (mlen < 4) {
    pg_walk_fail(w, SPLICE_R_BAD_LENGTH, type);
    return;
  }
  /* No counter comparisons in here: the verifier would track every value of a counter and the
   * bpf_loop callback would never converge. The step budget of the loop is the walk limit. */
  f->type = type;
  f->msg_left = mlen - 4;
  __u8 need = pg_frame_peek_for(w, type);
  if (need > f->msg_left) need = (__u8)f->msg_left;
  f->peek_need = need;
  f->peek_have = 0;
  f->peek[0] = f->peek[1] = 0;
  if (need == 0) pg_frame_classify(w, type);
  if (f->msg_left == 0) pg_frame_message_end(w);
}

/* One step of the walk; returns 1 to stop the bpf_loop. */
static long pg_frame_step(__u32 index, void* ctx) {
  struct pg_walk_ctx* c = ctx;
  struct pg_walk* w = c->w;
  struct __sk_buff* skb = c->skb;
  if (w->stop || w->off >= w->len) return 1;
  struct splice_frame* f = &w->f;
  __u32 avail = w->len - w->off;

  if (f->msg_left > 0) {
    if (f->peek_have < f->peek_need) {
      __u8 b = 0;
      if (bpf_skb_load_bytes(skb, w->off, &b, 1)) {
        pg_walk_fail(w, SPLICE_R_BAD_LENGTH, f->type);
        return 1;
      }
      if (f->peek_have == 0)
        f->peek[0] = b;
      else
        f->peek[1] = b;
      f->peek_have++;
      f->msg_left--;
      w->off++;
      if (f->peek_have == f->peek_need) pg_frame_classify(w, f->type);
      if (f->msg_left == 0) pg_frame_message_end(w);
      return w->stop ? 1 : 0;
    }
    __u32 n = f->msg_left < avail ? f->msg_left : avail;
    w->off += n;
    f->msg_left -= n;
    if (f->msg_left == 0) pg_frame_message_end(w);
    return w->stop ? 1 : 0;
  }

  /* At a header (maybe partly seen in the previous skb). */
  if (f->hdr_have == 0 && avail >= 5) {
    if (bpf_skb_load_bytes(skb, w->off, f->hdr, 5)) {
      pg_walk_fail(w, SPLICE_R_BAD_LENGTH, 0);
      return 1;
    }
    w->off += 5;
    pg_frame_header_done(w);
    return w->stop ? 1 : 0;
  }
  __u8 b = 0;
  if (bpf_skb_load_bytes(skb, w->off, &b, 1)) {
    pg_walk_fail(w, SPLICE_R_BAD_LENGTH, 0);
    return 1;
  }
  w->off++;
  __u8 have = f->hdr_have;
  if (have > 4) {
    pg_walk_fail(w, SPLICE_R_BAD_LENGTH, 0);
    return 1;
  }
  f->hdr[have] = b;
  f->hdr_have = have + 1;
  if (f->hdr_have == 5) pg_frame_header_done(w);
  return w->stop ? 1 : 0;
}

/* Steps: a header, at most two peeked bytes and one body skip per message, plus slack. */
#define PG_FRAME_MAX_STEPS (HELIOS_SOCK_MAX_WALK * 4 + 16)

#endif /* HELIOS_BPF_LIB_PG_FRAME_H */
