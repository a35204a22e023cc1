// Slab of every backend in the process, indexed by a stable 32-bit slot, so completions and
// cross-worker messages can name a backend by (index, gen). Addresses never move.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "pool/backend.h"

namespace helios::pool {

class BackendTable {
 public:
  static constexpr uint32_t kChunk = 256;
  static constexpr uint32_t kMaxChunks = 1024;  // 262,144 backends

  BackendTable() = default;
  ~BackendTable();
  BackendTable(const BackendTable&) = delete;
  BackendTable& operator=(const BackendTable&) = delete;

  // A fresh slot (state kClosed, gen bumped), or nullptr at capacity.
  Backend* allocate();
  void free(Backend* b);

  // Lock-free lookup; nullptr for an index that was never allocated.
  Backend* at(uint32_t index) const {
    uint32_t c = index / kChunk;
    if (c >= kMaxChunks) return nullptr;
    Backend* chunk = chunks_[c].load(std::memory_order_acquire);
    return chunk ? &chunk[index % kChunk] : nullptr;
  }
  Backend* find(uint32_t index, uint32_t gen) const {
    Backend* b = at(index);
    return b && b->gen == gen ? b : nullptr;
  }
  uint32_t live() const { return live_.load(std::memory_order_relaxed); }

 private:
  std::mutex mu_;
  std::array<std::atomic<Backend*>, kMaxChunks> chunks_{};
  uint32_t used_chunks_ = 0;
  std::vector<uint32_t> free_;
  std::atomic<uint32_t> live_{0};
};

}  // namespace helios::pool
