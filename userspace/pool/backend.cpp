#include "pool/backend.h"

#include <cassert>

#include "common/log.h"
#include "pool/backend_table.h"

namespace helios::pool {

const char* to_string(BackendState s) {
  switch (s) {
    case BackendState::kIdle:
      return "idle";
    case BackendState::kLeased:
      return "leased";
    case BackendState::kCleanup:
      return "cleanup";
    case BackendState::kClosed:
      return "closed";
  }
  return "?";
}

bool backend_transition_allowed(BackendState from, BackendState to) {
  using S = BackendState;
  if (to == S::kClosed) return true;
  switch (from) {
    case S::kClosed:
      return to == S::kIdle || to == S::kLeased;
    case S::kIdle:
      return to == S::kLeased;
    case S::kLeased:
      return to == S::kIdle || to == S::kCleanup || to == S::kLeased;
    case S::kCleanup:
      return to == S::kIdle || to == S::kLeased;
  }
  return false;
}

bool Backend::move_to(BackendState s) {
  if (!backend_transition_allowed(state, s)) {
    assert(false && "illegal backend state transition");
    log::error("refused backend state transition {} -> {} (backend {})", to_string(state),
               to_string(s), index);
    return false;
  }
  state = s;
  return true;
}

void Backend::reset_for_reuse() {
  path.reset();  // before the socket closes: a kernel path leaves its engine
  fd.reset();
  move_to(BackendState::kClosed);
  pool = nullptr;
  process_id = secret_key = 0;
  created_at = expires_at = idle_since = lease_started = 0;
  worker = 0;
  client_slot = client_gen = 0;
  inflight = 0;
  sends_inflight = 0;
  finish = Finish::kNone;
  cancel_issued = cleanup_rollback = cleanup_reset = false;
  control_out.clear();
  swallow_rfq = 0;
  tx_status = 'I';
  recv_armed = recv_paused = broken = forward_body = false;
  framer.reset();
  params.clear();
  synced_params.reset();
  statements.clear();
  probe_prepared = false;
  tls.reset();
  idle_prev = idle_next = nullptr;
}

BackendTable::~BackendTable() {
  for (auto& c : chunks_) delete[] c.load();
}

Backend* BackendTable::allocate() {
  std::lock_guard lock(mu_);
  uint32_t idx;
  if (!free_.empty()) {
    idx = free_.back();
    free_.pop_back();
  } else {
    if (used_chunks_ == kMaxChunks) return nullptr;
    auto* chunk = new Backend[kChunk];
    uint32_t base = used_chunks_ * kChunk;
    for (uint32_t i = 0; i < kChunk; ++i) chunk[i].index = base + i;
    chunks_[used_chunks_].store(chunk, std::memory_order_release);
    ++used_chunks_;
    for (uint32_t i = kChunk - 1; i > 0; --i) free_.push_back(base + i);
    idx = base;
  }
  Backend* b = at(idx);
  ++b->gen;
  live_.fetch_add(1, std::memory_order_relaxed);
  return b;
}

void BackendTable::free(Backend* b) {
  b->reset_for_reuse();
  ++b->gen;
  std::lock_guard lock(mu_);
  free_.push_back(b->index);
  live_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace helios::pool
