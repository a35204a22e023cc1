// io_uring wrapper: one ring per worker thread. Owns the ring fd and mappings (RAII), hands out
// SQEs (submitting on its own when the SQ is full), and drains CQEs in batches.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/result.h"

namespace helios::io {

struct RingOptions {
  unsigned entries = 4096;      // SQ size
  unsigned cq_entries = 65536;  // CQ size: idle clients cost nothing, bursts need room
};

class Ring {
 public:
  // Sets up the ring with the best flags this kernel accepts (probed, not assumed).
  static Result<std::unique_ptr<Ring>> create(const RingOptions& opts);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Never null: if the SQ is full it is submitted first.
  io_uring_sqe* sqe();
  // Submits pending SQEs and waits for at least one CQE or the timeout (0 = don't wait).
  int submit_and_wait(Nanos timeout);
  int submit() { return io_uring_submit(&ring_); }

  template <typename F>
  unsigned drain(F&& handle) {
    unsigned head, n = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      handle(*cqe);
      ++n;
    }
    io_uring_cq_advance(&ring_, n);
    return n;
  }

  int fd() const { return ring_.ring_fd; }
  io_uring* raw() { return &ring_; }
  const std::string& setup_description() const { return setup_desc_; }

 private:
  Ring() = default;
  io_uring ring_{};
  std::string setup_desc_;
};

}  // namespace helios::io
