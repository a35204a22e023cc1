// A registered ring of provided receive buffers (one per worker). Multishot recv picks a buffer
// only when data arrives, so an idle connection holds no receive memory. A buffer can be
// referenced by several queued sends; it returns to the kernel when its last reference drops.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "common/result.h"

namespace helios::io {

class BufferRing {
 public:
  // count must be a power of two <= 32768; size is each buffer's byte size.
  static Result<std::unique_ptr<BufferRing>> create(io_uring* ring, uint16_t group_id,
                                                    uint32_t count, uint32_t size);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  uint16_t group_id() const { return group_; }
  uint32_t buffer_size() const { return size_; }
  uint32_t count() const { return count_; }
  uint8_t* data(uint16_t bid) { return base_ + size_t(bid) * size_; }

  // A CQE delivered buffer `bid` (refcount becomes 1: the receiver's reference).
  void on_delivered(uint16_t bid) {
    refs_[bid] = 1;
    ++in_use_;
  }
  void ref(uint16_t bid) { ++refs_[bid]; }
  // Drops a reference; the last one recycles the buffer (made visible at the next publish()).
  void unref(uint16_t bid) {
    if (--refs_[bid] == 0) recycle(bid);
  }
  // Makes recycled buffers visible to the kernel; call once per event-loop iteration.
  // Returns true if any buffer became available (so starved receivers can be re-armed).
  bool publish();
  uint32_t in_use() const { return in_use_; }
  // More than half of the buffers are held (by receivers or queued sends).
  bool running_low() const { return in_use_ * 2 > count_; }
  // Buffers the kernel can still pick: published and not yet taken (from the kernel's head,
  // IORING_REGISTER_PBUF_STATUS, Linux 6.8+). All of them (count()) when the worker is idle;
  // fewer means buffers held by queued sends, or lost. An error where the kernel cannot say.
  Result<uint32_t> available() const;

 private:
  BufferRing() = default;
  void recycle(uint16_t bid);

  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  size_t br_bytes_ = 0;
  uint8_t* base_ = nullptr;
  size_t base_bytes_ = 0;
  uint16_t group_ = 0;
  uint32_t count_ = 0, size_ = 0, mask_ = 0;
  uint32_t pending_ = 0, in_use_ = 0;
  std::vector<uint16_t> refs_;
};

}  // namespace helios::io
