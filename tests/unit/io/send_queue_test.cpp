// SendQueue and ChunkPool: every byte offset a partial send can stop at, for owned (synthesized)
// and borrowed (receive-buffer) chunks, interleaved with clear and further pushes. A chunk must
// be released exactly as it was allocated, whatever part of it went out first (issue 19: an
// owned chunk was freed through the pointer a partial send had advanced). Then the copy policy:
// ranges that wait are copied when small or when buffers run low, so that a client that reads
// nothing does not hold the receive buffers.
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
  // copy_below 0: every range is borrowed unless buffers run low (the partial-send cases).
  explicit Rig(uint32_t copy_below = 0) {
    auto r = Ring::create(RingOptions{64, 128});
    REQUIRE(r);
    ring = std::move(*r);
    auto b = BufferRing::create(ring->raw(), 7, 8, 64);
    REQUIRE(b);
    bufs = std::move(*b);
    pool = std::make_unique<ChunkPool>(bufs.get(), copy_below);
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

// Sends everything queued, `step` bytes per send at most; returns the bytes in wire order.
std::string send_all(Rig& rig, SendQueue& q, uint32_t step = UINT32_MAX) {
  std::string out;
  while (!q.empty()) {
    std::string more = next_send(q);
    uint32_t n = std::min<uint32_t>(step, uint32_t(more.size()));
    q.complete(*rig.pool, n);
    out += more.substr(0, n);
  }
  return out;
}

TEST_CASE("SendQueue: small replies that wait are copied and their buffers go back at once") {
  Rig rig(16);  // buffers of 64 bytes: ranges under 16 bytes that wait are copied
  SendQueue q;
  std::string wire;
  // The first reply goes out at once: borrowed (zero copy), its buffer held until sent.
  const uint8_t* p0 = rig.receive(0, std::string("Z\0\0\0\5I", 6));
  q.push_borrowed(*rig.pool, 0, p0, 6);
  wire.append(reinterpret_cast<const char*>(p0), 6);
  rig.bufs->unref(0);
  CHECK(rig.bufs->in_use() == 1);
  (void)next_send(q);  // in flight, and the client reads nothing
  // A hundred more arrive, one per buffer, like a flood of Syncs answered one by one.
  for (int i = 0; i < 100; ++i) {
    uint16_t bid = uint16_t(1 + i % 3);
    std::string reply = std::string("Z\0\0\0\5", 5) + char('A' + i % 26);
    const uint8_t* p = rig.receive(bid, reply);
    q.push_borrowed(*rig.pool, bid, p, uint32_t(reply.size()));
    rig.bufs->unref(bid);
    wire += reply;
    CHECK(rig.bufs->in_use() == 1);  // only the buffer being sent is held
  }
  CHECK(rig.pool->copied_bytes() == 600);
  CHECK(q.bytes() == wire.size());
  // The copies share chunks of 4 KiB: one send takes them all.
  q.complete(*rig.pool, 6);
  int iovs = 0;
  CHECK(next_send(q, &iovs) == wire.substr(6));
  CHECK(iovs == 1);
  q.complete(*rig.pool, 0);
  CHECK(send_all(rig, q) == wire.substr(6));
  CHECK(rig.bufs->in_use() == 0);
}

TEST_CASE("SendQueue: a large range that waits stays borrowed until buffers run low") {
  Rig rig(16);
  SendQueue q;
  std::string wire, big(48, 'x');
  for (uint16_t bid = 0; bid < 6; ++bid) {
    big[0] = char('a' + bid);
    const uint8_t* p = rig.receive(bid, big);
    q.push_borrowed(*rig.pool, bid, p, uint32_t(big.size()));
    rig.bufs->unref(bid);
    wire += big;
  }
  // A range is copied when, with it, more than half of the 8 buffers are held: buffers 0-3
  // stay borrowed (4 of 8 held), 4 and 5 are copied (5 of 8) and go back at once.
  CHECK(rig.bufs->in_use() == 4);
  CHECK(rig.pool->copied_bytes() == 96);
  CHECK(send_all(rig, q, 7) == wire);
  CHECK(rig.bufs->in_use() == 0);
}

TEST_CASE("SendQueue: copies appended after a partial send of the chunk they join") {
  // Every offset: a partial send into an owned copy, then more copies that fit behind it.
  for (uint32_t first = 1; first < 30; ++first) {
    CAPTURE(first);
    Rig rig(64);  // every range that waits is copied
    SendQueue q;
    std::string wire;
    q.push_owned(*rig.pool, "head");  // the queue is not empty: what follows waits
    wire += "head";
    auto push = [&](uint16_t bid, const std::string& text) {
      const uint8_t* p = rig.receive(bid, text);
      q.push_borrowed(*rig.pool, bid, p, uint32_t(text.size()));
      rig.bufs->unref(bid);
      wire += text;
    };
    push(1, "0123456789");
    push(2, "abcdefghij");
    push(3, "KLMNOPQRST");
    std::string sent = next_send(q).substr(0, first);
    q.complete(*rig.pool, first);
    push(4, "uvwxyz");  // joins the copy chunk the partial send advanced into
    push(5, "!?");
    sent += send_all(rig, q, 5);
    CHECK(sent == wire);
    CHECK(rig.bufs->in_use() == 0);
  }
}

}  // namespace
}  // namespace helios::io
