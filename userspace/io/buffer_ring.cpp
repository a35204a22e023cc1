#include "io/buffer_ring.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace helios::io {

Result<std::unique_ptr<BufferRing>> BufferRing::create(io_uring* ring, uint16_t group_id,
                                                       uint32_t count, uint32_t size) {
  if (count == 0 || (count & (count - 1)) || count > 32768)
    return Error::invalid("buffer ring count must be a power of two <= 32768");
  std::unique_ptr<BufferRing> b(new BufferRing());
  b->ring_ = ring;
  b->group_ = group_id;
  b->count_ = count;
  b->size_ = size;
  b->mask_ = io_uring_buf_ring_mask(count);
  b->br_bytes_ = count * sizeof(io_uring_buf);
  void* br =
      mmap(nullptr, b->br_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (br == MAP_FAILED) return Error::from_errno("mmap buffer ring");
  b->br_ = static_cast<io_uring_buf_ring*>(br);
  // The buffers sit between two inaccessible guard pages: an overrun faults instead of
  // corrupting a neighbour, and the area stays one mapping of its own (never merged with the
  // adjacent anonymous memory), which is how /proc/<pid>/smaps tells it apart from the heap.
  b->base_bytes_ = size_t(count) * size;
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  void* area = mmap(nullptr, b->base_bytes_ + 2 * page, PROT_NONE,
                    MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE, -1, 0);
  if (area == MAP_FAILED) return Error::from_errno("mmap receive buffers");
  b->base_ = static_cast<uint8_t*>(area) + page;
  if (mprotect(b->base_, b->base_bytes_, PROT_READ | PROT_WRITE) != 0) {
    Error e = Error::from_errno("mprotect receive buffers");
    munmap(area, b->base_bytes_ + 2 * page);
    b->base_ = nullptr;
    return e;
  }

  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(b->br_);
  reg.ring_entries = count;
  reg.bgid = group_id;
  int rc = io_uring_register_buf_ring(ring, &reg, 0);
  if (rc < 0) return Error{-rc, std::string("io_uring_register_buf_ring: ") + std::strerror(-rc)};
  io_uring_buf_ring_init(b->br_);
  b->refs_.assign(count, 0);
  for (uint32_t i = 0; i < count; ++i)
    io_uring_buf_ring_add(b->br_, b->data(i), size, i, b->mask_, i);
  io_uring_buf_ring_advance(b->br_, count);
  return b;
}

BufferRing::~BufferRing() {
  if (br_) {
    io_uring_unregister_buf_ring(ring_, group_);
    munmap(br_, br_bytes_);
  }
  if (base_) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    munmap(base_ - page, base_bytes_ + 2 * page);
  }
}

void BufferRing::recycle(uint16_t bid) {
  io_uring_buf_ring_add(br_, data(bid), size_, bid, mask_, pending_++);
  --in_use_;
}

namespace {
// Linux 6.8 UAPI; liburing 2.3's headers predate it.
constexpr unsigned kRegisterPbufStatus = 26;  // IORING_REGISTER_PBUF_STATUS
struct PbufStatus {                           // struct io_uring_buf_status
  uint32_t buf_group;
  uint32_t head;
  uint32_t resv[8];
};
}  // namespace

Result<uint32_t> BufferRing::available() const {
  PbufStatus st{};
  st.buf_group = group_;
  if (syscall(__NR_io_uring_register, ring_->ring_fd, kRegisterPbufStatus, &st, 1) != 0)
    return Error::from_errno("IORING_REGISTER_PBUF_STATUS");
  uint16_t tail = io_uring_smp_load_acquire(&br_->tail);
  return uint32_t(uint16_t(tail - uint16_t(st.head)));
}

bool BufferRing::publish() {
  if (!pending_) return false;
  io_uring_buf_ring_advance(br_, pending_);
  pending_ = 0;
  return true;
}

}  // namespace helios::io
