// SendQueue and ChunkPool: every byte offset a partial send can stop at, for owned (synthesized)
// and borrowed (receive-buffer) chunks, interleaved with clear and further pushes. A chunk must
// be released exactly as it was allocated, whatever part of it went out first (issue 19: an
// owned chunk was freed through the pointer a partial send had advanced).
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "io/buffer_ring.h"
#include "io/ring.h"
#include "io/send_queue.h"

namespace helios::io {
namespace {

struct Rig {
  std::unique_ptr<Ring> ring;
  std::unique_ptr<BufferRing> bufs;
  std::unique_ptr<ChunkPool> pool;
  Rig() {
    auto r = Ring::create(RingOptions{64, 128});
    REQUIRE(r);
    ring = std::move(*r);
    auto b = BufferRing::create(ring->raw(), 7, 8, 64);
    REQUIRE(b);
    bufs = std::move(*b);
    pool = std::make_unique<ChunkPool>(bufs.get());
  }
  // A receive into buffer `bid` holding `text`; the receiver keeps its reference until release().
  const uint8_t* receive(uint16_t bid, std::string_view text) {
    bufs->on_delivered(bid);
    std::memcpy(bufs->data(bid), text.data(), text.size());
    return bufs->data(bid);
  }
};

// What the queue would put on the wire next, as one string.
std::string next_send(SendQueue& q, int* iov_count = nullptr) {
  iovec iov[SendQueue::kMaxIov];
  int n = q.prepare(iov);
  if (iov_count) *iov_count = n;
  std::string out;
  for (int i = 0; i < n; ++i) out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

// Queues: borrowed "Q..." from buffer 1, an owned 42-byte rewritten Bind, borrowed from buffer 2,
// an owned Sync. Returns the bytes in wire order.
std::string fill(Rig& rig, SendQueue& q) {
  const std::string a = "Qselect 1;", b(42, 'B'), c = "Eexecute", d("S\0\0\0\4", 5);
  const uint8_t* pa = rig.receive(1, a);
  const uint8_t* pc = rig.receive(2, c);
  q.push_borrowed(*rig.pool, 1, pa, uint32_t(a.size()));
  q.push_owned(*rig.pool, b);
  q.push_borrowed(*rig.pool, 2, pc, uint32_t(c.size()));
  q.push_owned(*rig.pool, d);
  rig.bufs->unref(1);  // the receiver is done with its buffers; the queue keeps them
  rig.bufs->unref(2);
  return a + b + c + d;
}

TEST_CASE("SendQueue: a partial send at every offset, then the rest, sends each byte once") {
  Rig rig;
  SendQueue probe;
  const std::string wire = fill(rig, probe);
  probe.clear(*rig.pool);
  for (uint32_t first = 1; first < wire.size(); ++first) {
    for (uint32_t second = 1; second <= wire.size() - first; ++second) {
      CAPTURE(first);
      CAPTURE(second);
      SendQueue q;
      fill(rig, q);
      std::string sent;
      CHECK(next_send(q) == wire);
      q.complete(*rig.pool, first);
      sent += wire.substr(0, first);
      CHECK(q.bytes() == wire.size() - first);
      std::string rest = next_send(q);
      CHECK(rest == wire.substr(first));
      q.complete(*rig.pool, second);  // a second partial send (or the whole rest)
      sent += rest.substr(0, second);
      while (!q.empty()) {
        std::string more = next_send(q);
        q.complete(*rig.pool, uint32_t(more.size()));
        sent += more;
      }
      CHECK(sent == wire);
      CHECK(q.bytes() == 0);
      CHECK(rig.bufs->in_use() == 0);  // every receive buffer went back
    }
  }
}

TEST_CASE("SendQueue: clear after a partial send at every offset releases everything") {
  Rig rig;
  SendQueue probe;
  const std::string wire = fill(rig, probe);
  probe.clear(*rig.pool);
  for (uint32_t first = 1; first < wire.size(); ++first) {
    CAPTURE(first);
    SendQueue q;
    fill(rig, q);
    (void)next_send(q);
    q.complete(*rig.pool, first);
    q.clear_if_idle(*rig.pool);
    CHECK(q.empty());
    CHECK(q.bytes() == 0);
    CHECK(rig.bufs->in_use() == 0);
  }
}

TEST_CASE("SendQueue: bytes pushed while a send is in flight keep their order") {
  Rig rig;
  for (uint32_t first = 1; first <= 10; ++first) {
    CAPTURE(first);
    SendQueue q;
    const uint8_t* p = rig.receive(3, "0123456789abcdef");
    q.push_borrowed(*rig.pool, 3, p, 10);
    CHECK(next_send(q) == "0123456789");
    // Contiguous bytes of the same buffer arrive while the send is in flight: they must not be
    // merged into the chunk the kernel is sending from.
    q.push_borrowed(*rig.pool, 3, p + 10, 6);
    q.push_owned(*rig.pool, "XYZ");
    rig.bufs->unref(3);
    q.complete(*rig.pool, first);
    std::string rest;
    while (!q.empty()) {
      std::string more = next_send(q);
      q.complete(*rig.pool, uint32_t(more.size()));
      rest += more;
    }
    CHECK(rest == std::string("0123456789abcdefXYZ").substr(first));
    CHECK(rig.bufs->in_use() == 0);
  }
}

TEST_CASE("SendQueue: TLS drain hands over what a partial send left, once") {
  Rig rig;
  SendQueue q;
  const std::string wire = fill(rig, q);
  (void)next_send(q);
  q.complete(*rig.pool, 13);  // 3 bytes into the owned Bind
  std::string drained;
  q.drain(*rig.pool, [&](const uint8_t* d, uint32_t n) {
    drained.append(reinterpret_cast<const char*>(d), n);
  });
  CHECK(drained == wire.substr(13));
  CHECK(q.empty());
  CHECK(rig.bufs->in_use() == 0);
}

}  // namespace
}  // namespace helios::io
