// One worker's ring buffer of splice events (struct splice_event): the kernel writes a record
// when a lease leaves ACTIVE (ended at ReadyForQuery 'I', handed back, framing error). The
// worker polls fd() for POLLIN (an io_uring POLL_ADD works) and calls consume().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "helios/bpf_abi.h"

struct ring_buffer;

namespace helios::bpf {

class SpliceEventRing {
 public:
  SpliceEventRing() = default;
  SpliceEventRing(SpliceEventRing&&) noexcept;
  SpliceEventRing& operator=(SpliceEventRing&&) noexcept;
  ~SpliceEventRing();

  // Creates a ring map of `bytes` (a power of two, multiple of the page size).
  static Result<SpliceEventRing> create(uint32_t bytes, const char* name);

  int fd() const { return map_.get(); }  // the RINGBUF map: POLLIN when records are waiting
  // Hands every waiting record to `fn`; returns how many. Never blocks.
  Result<size_t> consume(const std::function<void(const splice_event&)>& fn);
  // Convenience for tests: the records now waiting.
  std::vector<splice_event> drain();

 private:
  struct Sink {  // on the heap: libbpf keeps its address as the callback context
    const std::function<void(const splice_event&)>* fn = nullptr;
    size_t got = 0;
  };
  static int on_sample(void* ctx, void* data, size_t size);
  UniqueFd map_;
  std::unique_ptr<Sink> sink_;
  ring_buffer* rb_ = nullptr;
};

}  // namespace helios::bpf
