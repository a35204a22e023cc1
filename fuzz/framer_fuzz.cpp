// pg::StreamFramer on arbitrary bytes, fed whole and fed in pieces cut where the input says:
// both feeds must report the same messages (type, length, captured prefix, body bytes), and every
// byte up to a framing error must be accounted for exactly once.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "pg/framer.h"

namespace {

struct Recorder {
  const uint8_t* data = nullptr;
  uint32_t prefix = 0;  // body bytes each message asks for (varies with the input)
  std::string log;      // what the framer reported, in order
  uint64_t bytes = 0;
  bool failed = false;

  uint32_t prefix_wanted(char type, uint32_t length) {
    return (uint8_t(type) % 3 == 0) ? length : prefix;  // some types want everything
  }
  void on_message(const helios::pg::FramedMessage& m) {
    if (m.prefix_len < helios::pg::kHeaderSize || m.captured() > m.body_len()) __builtin_trap();
    if (m.captured() + m.body_left != m.body_len()) __builtin_trap();
    log += 'M';
    log += m.type;
    log.append(reinterpret_cast<const char*>(&m.length), 4);
    log.append(reinterpret_cast<const char*>(m.prefix), m.prefix_len);
    bytes += m.prefix_len;
  }
  void on_body(uint32_t off, uint32_t n) {
    log.append(reinterpret_cast<const char*>(data + off), n);
    bytes += n;
  }
  void on_message_end() { log += 'E'; }
  void on_error(const char*) { failed = true; }
};

void feed(helios::pg::StreamFramer& f, Recorder& r, const uint8_t* p, uint32_t n) {
  r.data = p;
  f.feed(p, n, r);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  uint32_t prefix = data[0] * 37u;
  uint32_t cut1 = data[1], cut2 = data[2];
  data += 3;
  size -= 3;
  std::vector<uint8_t> input(data, data + size);  // a copy: the framer must not read past it

  helios::pg::StreamFramer whole;
  Recorder a;
  a.prefix = prefix;
  feed(whole, a, input.data(), uint32_t(input.size()));

  helios::pg::StreamFramer parts;
  Recorder b;
  b.prefix = prefix;
  size_t pos = 0;
  size_t cuts[] = {size ? cut1 % (size + 1) : 0, size ? (cut1 + cut2 * 7u) % (size + 1) : 0};
  if (cuts[0] > cuts[1]) std::swap(cuts[0], cuts[1]);
  for (size_t end : {cuts[0], cuts[1], size}) {
    // Each piece in its own buffer, as receive buffers are.
    std::vector<uint8_t> piece(input.begin() + long(pos), input.begin() + long(end));
    if (!piece.empty()) feed(parts, b, piece.data(), uint32_t(piece.size()));
    pos = end;
  }
  if (a.failed != b.failed || a.log != b.log || a.bytes != b.bytes) __builtin_trap();
  if (!a.failed && a.bytes > size) __builtin_trap();
  return 0;
}
