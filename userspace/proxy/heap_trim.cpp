#include "proxy/heap_trim.h"

#include <malloc.h>

namespace helios::proxy {

size_t HeapTrim::maybe_trim(Nanos now) {
  if (last_ != 0 && now - last_ < kTrimInterval) return 0;
  struct mallinfo2 mi = ::mallinfo2();
  if (mi.fordblks < kTrimFreeBytes) return 0;
  last_ = now;
  ::malloc_trim(0);
  return mi.fordblks;
}

}  // namespace helios::proxy
