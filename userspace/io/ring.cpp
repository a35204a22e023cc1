#include "io/ring.h"

#include <cerrno>
#include <cstring>

namespace helios::io {

Result<std::unique_ptr<Ring>> Ring::create(const RingOptions& opts) {
  std::unique_ptr<Ring> r(new Ring());
  // Preferred: a ring only this thread submits to, with completions run when we ask for them.
  // Older kernels refuse some flags with EINVAL; fall back step by step.
  struct Attempt {
    unsigned flags;
    const char* name;
  };
  const Attempt attempts[] = {
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "single_issuer+defer_taskrun"},
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN, "single_issuer+coop_taskrun"},
      {IORING_SETUP_COOP_TASKRUN, "coop_taskrun"},
      {0, "plain"},
  };
  int last = 0;
  for (const auto& a : attempts) {
    io_uring_params p{};
    p.flags = a.flags | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = opts.cq_entries;
    last = io_uring_queue_init_params(opts.entries, &r->ring_, &p);
    if (last == 0) {
      if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_EXT_ARG)) {
        io_uring_queue_exit(&r->ring_);
        return Error{ENOTSUP, "io_uring lacks NODROP/EXT_ARG (kernel too old)"};
      }
      r->setup_desc_ = a.name;
      return r;
    }
    if (last != -EINVAL) break;
  }
  return Error{-last, std::string("io_uring_queue_init: ") + std::strerror(-last)};
}

Ring::~Ring() {
  if (ring_.ring_fd >= 0) io_uring_queue_exit(&ring_);
}

io_uring_sqe* Ring::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  while (!s) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  return s;
}

int Ring::submit_and_wait(Nanos timeout) {
  if (timeout <= 0) return io_uring_submit(&ring_);
  __kernel_timespec ts{timeout / kNanosPerSec, timeout % kNanosPerSec};
  io_uring_cqe* cqe = nullptr;
  int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  return rc;
}

}  // namespace helios::io
