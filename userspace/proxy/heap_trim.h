// Memory freed inside the heap goes back to the system. glibc returns freed memory only from
// the top of an arena, so a burst of clients (statement texts, large messages, receive
// scratch) leaves the process's RSS at its peak long after everything was freed, and each
// later burst fragments the arenas further. Called from the control thread's once-a-second
// upkeep: when the arenas hold more than kTrimFreeBytes free, malloc_trim(0) gives their free
// pages back (madvise), at most once per kTrimInterval.
#pragma once

#include <cstddef>

#include "common/clock.h"

namespace helios::proxy {

constexpr size_t kTrimFreeBytes = 8u << 20;
constexpr Nanos kTrimInterval = 5 * kNanosPerSec;

class HeapTrim {
 public:
  // Returns the bytes the arenas held free when it trimmed, 0 when it did not.
  size_t maybe_trim(Nanos now);

 private:
  Nanos last_ = 0;
};

}  // namespace helios::proxy
