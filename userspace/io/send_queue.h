// Outgoing bytes of one socket: a FIFO of chunks, each either a range of a provided receive
// buffer (zero-copy forwarding: the buffer is referenced until the send completes) or bytes the
// proxy owns (synthesized, or copied). One send is in flight per socket, so order is kept without
// links. Chunks come from a per-worker free list.
//
// A borrowed range pins its whole receive buffer. Bytes that go out at once are borrowed; bytes
// that have to wait behind others are copied when they are small or when the worker's buffers
// run low (ChunkPool::should_copy), so that a client that reads nothing holds what it was sent,
// not a 16 KiB buffer per reply, and cannot take the buffers other clients receive into.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "io/buffer_ring.h"

namespace helios::io {

struct Chunk {
  Chunk* next;
  const uint8_t* data;  // the bytes not sent yet (a partial send moves it forward)
  uint32_t len;
  int32_t bid;    // >= 0: range of provided buffer `bid`; -1: owned (malloc)
  uint32_t sent;  // bytes already sent from this chunk: an owned one was allocated at data - sent
  uint32_t cap;   // owned: bytes allocated at data - sent (copies append while there is room)
};

class ChunkPool {
 public:
  // Waiting ranges shorter than copy_below bytes are copied (default: a quarter of a buffer).
  explicit ChunkPool(BufferRing* bufs, uint32_t copy_below = UINT32_MAX)
      : bufs_(bufs), copy_below_(copy_below != UINT32_MAX ? copy_below : bufs->buffer_size() / 4) {}
  ~ChunkPool() {
    for (Chunk* c : blocks_) std::free(c);
  }
  ChunkPool(const ChunkPool&) = delete;
  ChunkPool& operator=(const ChunkPool&) = delete;

  Chunk* borrowed(uint16_t bid, const uint8_t* data, uint32_t len) {
    bufs_->ref(bid);
    return make(data, len, bid);
  }
  // An owned copy of bytes, with room for at least `cap` bytes in all.
  Chunk* owned(std::string_view bytes, uint32_t cap = 0) {
    cap = std::max<uint32_t>({cap, uint32_t(bytes.size()), 1});
    auto* p = static_cast<uint8_t*>(std::malloc(cap));
    std::memcpy(p, bytes.data(), bytes.size());
    Chunk* c = make(p, uint32_t(bytes.size()), -1);
    c->cap = cap;
    return c;
  }
  // Whether a range of len bytes of a receive buffer that has to wait is copied, not borrowed.
  bool should_copy(uint32_t len) const { return len < copy_below_ || bufs_->running_low(); }
  // Bytes copied instead of borrowed, since the pool was made.
  uint64_t copied_bytes() const { return copied_; }
  void count_copy(uint32_t len) { copied_ += len; }
  void release(Chunk* c) {
    if (c->bid >= 0)
      bufs_->unref(uint16_t(c->bid));
    else
      std::free(const_cast<uint8_t*>(c->data - c->sent));
    c->next = free_;
    free_ = c;
  }
  BufferRing* buffers() { return bufs_; }

 private:
  Chunk* make(const uint8_t* data, uint32_t len, int32_t bid) {
    if (!free_) grow();
    Chunk* c = free_;
    free_ = c->next;
    *c = Chunk{nullptr, data, len, bid, 0, 0};
    return c;
  }
  void grow() {
    constexpr size_t kBlock = 256;
    auto* block = static_cast<Chunk*>(std::malloc(sizeof(Chunk) * kBlock));
    blocks_.push_back(block);
    for (size_t i = 0; i < kBlock; ++i) {
      block[i].next = free_;
      free_ = &block[i];
    }
  }
  BufferRing* bufs_;
  uint32_t copy_below_;
  uint64_t copied_ = 0;
  Chunk* free_ = nullptr;
  std::vector<Chunk*> blocks_;
};

struct SendOp;

class SendQueue {
 public:
  static constexpr int kMaxIov = 32;

  bool empty() const { return head_ == nullptr; }
  bool in_flight() const { return in_flight_; }
  uint32_t bytes() const { return bytes_; }

  // Appends a range of a provided buffer: borrowed, and merged with the tail when contiguous;
  // copied instead when it has to wait and the pool says so (see the top of this file).
  void push_borrowed(ChunkPool& pool, uint16_t bid, const uint8_t* data, uint32_t len) {
    if (len == 0) return;
    if (head_ && pool.should_copy(len)) {
      pool.count_copy(len);
      append_owned(pool, data, len);
      return;
    }
    if (tail_ && tail_->bid == bid && tail_->data + tail_->len == data &&
        !(in_flight_ && tail_ == last_in_flight_)) {
      tail_->len += len;
    } else {
      append(pool.borrowed(bid, data, len));
    }
    bytes_ += len;
  }
  // Appends a copy of bytes (synthesized, or a range that waits), filling the owned tail first.
  void push_owned(ChunkPool& pool, std::string_view bytes) {
    if (bytes.empty()) return;
    append_owned(pool, reinterpret_cast<const uint8_t*>(bytes.data()), uint32_t(bytes.size()));
  }

  // Hands every queued chunk to fn(data, len) and releases it (TLS: plaintext to encrypt).
  // Only with nothing in flight.
  template <typename F>
  void drain(ChunkPool& pool, F&& fn) {
    while (head_) {
      Chunk* c = head_;
      head_ = c->next;
      fn(c->data, c->len);
      pool.release(c);
    }
    tail_ = last_in_flight_ = nullptr;
    bytes_ = 0;
  }

  // Calls fn(data, len) for every byte range queued and not yet sent, in order.
  template <typename F>
  void for_each(F&& fn) const {
    for (const Chunk* c = head_; c; c = c->next) fn(c->data, c->len);
  }
  // Puts synthesized bytes in front of everything queued. Only with nothing in flight.
  void push_front_owned(ChunkPool& pool, std::string_view bytes) {
    if (bytes.empty()) return;
    Chunk* c = pool.owned(bytes);
    c->next = head_;
    head_ = c;
    if (!tail_) tail_ = c;
    bytes_ += bytes.size();
  }

  // Fills iov with the chunks to send next; marks them in flight. Returns iov count.
  int prepare(iovec* iov) {
    int n = 0;
    for (Chunk* c = head_; c && n < kMaxIov; c = c->next) {
      iov[n].iov_base = const_cast<uint8_t*>(c->data);
      iov[n].iov_len = c->len;
      last_in_flight_ = c;
      ++n;
    }
    in_flight_ = n > 0;
    return n;
  }

  // A send completed with `sent` bytes: releases fully sent chunks, trims a partial one.
  void complete(ChunkPool& pool, uint32_t sent) {
    in_flight_ = false;
    last_in_flight_ = nullptr;
    bytes_ -= sent;
    while (sent > 0 && head_) {
      if (sent >= head_->len) {
        sent -= head_->len;
        Chunk* c = head_;
        head_ = c->next;
        if (!head_) tail_ = nullptr;
        pool.release(c);
      } else {
        head_->data += sent;
        head_->len -= sent;
        head_->sent += sent;
        sent = 0;
      }
    }
  }

  // Drops everything unless a send is in flight (then the completion releases it).
  void clear_if_idle(ChunkPool& pool) {
    if (!in_flight_) clear(pool);
  }

  // Drops everything (connection closing). Must not be called with a send in flight.
  void clear(ChunkPool& pool) {
    while (head_) {
      Chunk* c = head_;
      head_ = c->next;
      pool.release(c);
    }
    tail_ = last_in_flight_ = nullptr;
    bytes_ = 0;
    in_flight_ = false;
  }

 private:
  // An owned chunk has room for this many bytes at least, so that the small messages and copies
  // that follow one another share it: what a queue holds is about what it was given.
  static constexpr uint32_t kOwnedBlock = 4096;

  // Copies into the owned tail while it has room and is not being sent, else a new chunk.
  void append_owned(ChunkPool& pool, const uint8_t* data, uint32_t len) {
    bytes_ += len;
    if (tail_ && tail_->bid < 0 && !(in_flight_ && tail_ == last_in_flight_)) {
      uint32_t room = tail_->cap - tail_->sent - tail_->len;
      if (room >= len) {
        std::memcpy(const_cast<uint8_t*>(tail_->data) + tail_->len, data, len);
        tail_->len += len;
        return;
      }
    }
    append(pool.owned(std::string_view(reinterpret_cast<const char*>(data), len), kOwnedBlock));
  }
  void append(Chunk* c) {
    if (tail_)
      tail_->next = c;
    else
      head_ = c;
    tail_ = c;
  }
  Chunk* head_ = nullptr;
  Chunk* tail_ = nullptr;
  Chunk* last_in_flight_ = nullptr;

 public:
  SendOp* op = nullptr;  // msghdr of a multi-chunk send in flight

 private:
  uint32_t bytes_ = 0;
  bool in_flight_ = false;
};

// The msghdr + iovecs of a multi-chunk send, kept alive until its completion. Pooled per worker,
// so an idle connection holds none and a busy one allocates nothing.
struct SendOp {
  msghdr mh;
  iovec iov[SendQueue::kMaxIov];
  SendOp* next;
};

class SendOpPool {
 public:
  ~SendOpPool() {
    while (free_) {
      SendOp* n = free_->next;
      delete free_;
      free_ = n;
    }
  }
  SendOp* get() {
    SendOp* op = free_ ? free_ : new SendOp;
    if (free_) free_ = free_->next;
    op->mh = msghdr{};
    op->mh.msg_iov = op->iov;
    return op;
  }
  void put(SendOp* op) {
    if (!op) return;
    op->next = free_;
    free_ = op;
  }

 private:
  SendOp* free_ = nullptr;
};

}  // namespace helios::io
