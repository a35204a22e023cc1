#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "pg/framer.h"

using helios::pg::FramedMessage;
using helios::pg::StreamFramer;

namespace {

std::string msg(char type, const std::string& body) {
  std::string m(1, type);
  uint32_t len = body.size() + 4;
  m += char(len >> 24);
  m += char(len >> 16);
  m += char(len >> 8);
  m += char(len);
  return m + body;
}

// Records what the framer reports and reassembles each message from prefix + body ranges.
struct Recorder {
  uint32_t want = 8;
  std::vector<std::string> messages;  // reassembled full messages
  std::vector<std::string> prefixes;
  std::string current;
  const uint8_t* input = nullptr;
  std::string error;
  uint32_t prefix_wanted(char, uint32_t) { return want; }
  void on_message(const FramedMessage& m) {
    current.assign(reinterpret_cast<const char*>(m.prefix), m.prefix_len);
    prefixes.push_back(current);
    if (m.in_place) CHECK(m.prefix == input + m.offset);
  }
  void on_body(uint32_t off, uint32_t n) {
    current.append(reinterpret_cast<const char*>(input + off), n);
  }
  void on_message_end() { messages.push_back(current); }
  void on_error(const char* what) { error = what; }
};

void feed_split(StreamFramer& f, Recorder& r, const std::string& stream, std::vector<size_t> cuts) {
  cuts.push_back(stream.size());
  size_t pos = 0;
  for (size_t c : cuts) {
    std::string piece = stream.substr(pos, c - pos);  // separate buffer per piece
    r.input = reinterpret_cast<const uint8_t*>(piece.data());
    f.feed(r.input, piece.size(), r);
    pos = c;
  }
}

}  // namespace

TEST_CASE("framer reassembles messages split at every offset") {
  std::string stream = msg('Q', std::string("SELECT 1;") + '\0') + msg('Z', "I") +
                       msg('D', std::string(300, 'x')) + msg('S', "");
  for (size_t cut = 1; cut < stream.size(); ++cut) {
    for (uint32_t want : {0u, 1u, 8u, 1024u}) {
      StreamFramer f;
      Recorder r;
      r.want = want;
      feed_split(f, r, stream, {cut});
      REQUIRE(r.messages.size() == 4);
      CHECK(r.messages[0] == msg('Q', std::string("SELECT 1;") + '\0'));
      CHECK(r.messages[1] == msg('Z', "I"));
      CHECK(r.messages[2] == msg('D', std::string(300, 'x')));
      CHECK(r.messages[3] == msg('S', ""));
      CHECK(f.at_boundary());
      // Prefix carries header + min(want, body) bytes.
      CHECK(r.prefixes[1].size() == 5 + std::min<uint32_t>(want, 1));
      CHECK(r.prefixes[2].size() == 5 + std::min<uint32_t>(want, 300));
    }
  }
}

TEST_CASE("framer handles one byte at a time and 100 messages in one buffer") {
  std::string stream;
  for (int i = 0; i < 100; ++i) stream += msg('D', std::to_string(i));
  {
    StreamFramer f;
    Recorder r;
    std::vector<size_t> cuts;
    for (size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
    feed_split(f, r, stream, cuts);
    REQUIRE(r.messages.size() == 100);
    CHECK(r.messages[42] == msg('D', "42"));
  }
  {
    StreamFramer f;
    Recorder r;
    feed_split(f, r, stream, {});
    CHECK(r.messages.size() == 100);
    CHECK_FALSE(f.holds_scratch());  // nothing straddled: no scratch allocated
  }
}

TEST_CASE("framer is not at a boundary mid-message and rejects bad lengths") {
  StreamFramer f;
  Recorder r;
  std::string m = msg('D', std::string(100, 'y'));
  feed_split(f, r, m.substr(0, 3), {});
  CHECK_FALSE(f.at_boundary());
  std::string bad = "Q";
  bad += std::string("\0\0\0\2", 4);
  StreamFramer g;
  Recorder r2;
  feed_split(g, r2, bad, {});
  CHECK(g.failed());
  CHECK(r2.error.find("length") != std::string::npos);
}

TEST_CASE("framer streams a huge declared message without buffering it") {
  StreamFramer f;
  Recorder r;
  r.want = 0;
  std::string header = "d";
  uint32_t len = 0x40000000;  // 1 GiB CopyData
  header += char(len >> 24);
  header += char(len >> 16);
  header += char(len >> 8);
  header += char(len);
  r.input = reinterpret_cast<const uint8_t*>(header.data());
  f.feed(r.input, header.size(), r);
  std::string chunk(1 << 16, 'z');
  uint64_t fed = 0;
  r.input = reinterpret_cast<const uint8_t*>(chunk.data());
  struct Counting : Recorder {
    uint64_t body = 0;
    void on_body(uint32_t, uint32_t n) { body += n; }
  } c;
  c.want = 0;
  c.input = r.input;
  while (fed < len - 4) {
    uint32_t n = std::min<uint64_t>(chunk.size(), len - 4 - fed);
    f.feed(c.input, n, c);
    fed += n;
  }
  CHECK(c.body == uint64_t(len) - 4);
  CHECK(c.messages.size() == 1);
  CHECK(f.at_boundary());
}
