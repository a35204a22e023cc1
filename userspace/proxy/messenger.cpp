#include "proxy/messenger.h"

#include <cstring>

#include "common/log.h"
#include "proxy/context.h"
#include "proxy/ring_op.h"
#include "proxy/worker.h"

namespace helios::proxy {

ThreadMessenger::ThreadMessenger(SharedContext& ctx) : ctx_(ctx) {
  auto ring = io::Ring::create({.entries = 64, .cq_entries = 128});
  if (!ring) {
    log::error("cannot create a messenger ring: {}", ring.error().message);
    std::abort();
  }
  ring_ = std::move(*ring);
}

void ThreadMessenger::send(uint16_t worker, uint32_t res, uint64_t user_data) {
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_msg_ring(sqe, ctx_.workers[worker]->ring_fd(), res, user_data, 0);
  sqe->user_data = 0;
  ring_->submit();
  // Reap our own completions so the small CQ never fills; report failures.
  ring_->drain([](const io_uring_cqe& cqe) {
    if (cqe.res < 0) log::error("msg_ring to a worker failed: {}", std::strerror(-cqe.res));
  });
}

void ThreadMessenger::grant(const pool::Waiter& w, pool::Backend* b) {
  send(w.worker, b->index, pack(Op::kGrant, w.slot, w.gen));
}

void ThreadMessenger::fail(const pool::Waiter& w, pool::WaitFailure why) {
  send(w.worker, uint32_t(why), pack(Op::kFail, w.slot, w.gen));
}

void ThreadMessenger::mail(uint16_t worker) {
  send(worker, 0, pack(Op::kMail, 0, 0));
}

}  // namespace helios::proxy
