// The worker-facing hand-off API (userspace/datapath/): SpliceContinuation tells where passed-up
// bytes start after the kernel forwarded part of a message; KernelLease runs the protocol end to
// end on a real spliced pair, including a hand-back in the middle of a result.
#include <doctest/doctest.h>

#include <string>

#include "datapath/auto_rules.h"
#include "datapath/kernel_lease.h"
#include "datapath/splice_continuation.h"
#include "splice_rig.h"

using namespace helios;
using namespace helios::bpf;
using namespace helios::bpf::test;
using namespace helios::datapath;

namespace {

const uint8_t* u8(const std::string& s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

splice_frame frame_after(const std::string& forwarded_part_of_one_message) {
  // The kernel's position after forwarding the first k bytes of a message.
  splice_frame f{};
  const std::string& m = forwarded_part_of_one_message;
  if (m.size() < 5) {
    f.hdr_have = uint8_t(m.size());
    std::memcpy(f.hdr, m.data(), m.size());
    return f;
  }
  std::memcpy(f.hdr, m.data(), 5);
  f.type = uint8_t(m[0]);
  uint32_t len = (uint32_t(uint8_t(m[1])) << 24) | (uint32_t(uint8_t(m[2])) << 16) |
                 (uint32_t(uint8_t(m[3])) << 8) | uint8_t(m[4]);
  f.msg_left = len - 4 - uint32_t(m.size() - 5);
  return f;
}

}  // namespace

TEST_CASE("continuation: at a boundary nothing is skipped") {
  SpliceContinuation k;
  CHECK(k.done());
  CHECK(!k.interrupted());
  std::string q = pgm::query("SELECT 1");
  CHECK(k.feed(u8(q), uint32_t(q.size())) == 0);
}

TEST_CASE("continuation: every interruption point of a message, fed in every split") {
  const std::string msg = pgm::data_row(9);
  const std::string next = pgm::ready('I');
  for (size_t k = 1; k < msg.size(); ++k) {
    CAPTURE(k);
    SpliceContinuation c(frame_after(msg.substr(0, k)));
    CHECK(c.interrupted());
    std::string rest = msg.substr(k) + next;
    // Fed one byte at a time: the raw part is exactly the message's remainder.
    size_t raw = 0, pos = 0;
    while (!c.done() && pos < rest.size()) {
      raw += c.feed(u8(rest) + pos, 1);
      ++pos;
    }
    CHECK(c.done());
    CHECK(raw == msg.size() - k);
    CHECK(c.type() == 'D');
    CHECK(c.length() == 13);
    // Fed whole: same answer.
    SpliceContinuation d(frame_after(msg.substr(0, k)));
    CHECK(d.feed(u8(rest), uint32_t(rest.size())) == msg.size() - k);
  }
}

TEST_CASE("continuation: a ReadyForQuery cut before its status reports the status") {
  std::string z = pgm::ready('T');
  SpliceContinuation c(frame_after(z.substr(0, 5)));
  std::string rest = z.substr(5);
  CHECK(c.feed(u8(rest), 1) == 1);
  CHECK(c.done());
  CHECK(c.type() == 'Z');
  REQUIRE(c.has_first_body_byte());
  CHECK(c.first_body_byte() == 'T');
  // Cut inside the header: the status is the first byte after the header.
  SpliceContinuation h(frame_after(z.substr(0, 2)));
  std::string tail = z.substr(2);
  CHECK(h.feed(u8(tail), uint32_t(tail.size())) == tail.size());
  REQUIRE(h.has_first_body_byte());
  CHECK(h.first_body_byte() == 'T');
}

TEST_CASE("KernelLease: start, kernel end, finish, next transaction in user space" *
          doctest::skip(skip_splice_tests())) {
  SpliceRig r;
  // The rig already added both sockets; a worker would use join(): check it refuses a socket
  // with unread bytes and accepts a quiet one.
  SpliceEngine eng2;
  {
    SpliceOptions o;
    o.instance = unique_instance("dp");
    auto e = SpliceEngine::load(o);
    REQUIRE(e.ok());
    eng2 = std::move(*e);
  }
  TcpPair x = connect_pair(r.l);
  REQUIRE(send_all(x.client.get(), std::string("unread")));
  REQUIRE(eventually([&] { return inq(x.server.get()) == 6; }));
  SpliceEndpoint ex;
  auto j = join(eng2, x.server.get(), SPLICE_ROLE_CLIENT, ex);
  CHECK(!j.ok());
  CHECK(j.error().code == EAGAIN);
  CHECK(recv_exact(x.server.get(), 6) == "unread");
  CHECK(join(eng2, x.server.get(), SPLICE_ROLE_CLIENT, ex).ok());
  CHECK(leave(eng2, ex).ok());

  SpliceEndpoint c{r.c, 0, 0, true}, b{r.b, 0, 0, true};
  LeaseInfo li;
  li.seq = 5;
  li.tenant_id = r.tenant;
  li.outstanding = 1;  // the worker sent the transaction's first Query itself
  auto lease = KernelLease::start(r.eng, r.proxy_c(), c, r.proxy_b(), b, li);
  REQUIRE(lease.ok());
  std::string resp = pgm::response(10);
  REQUIRE(send_all(r.pg(), resp));
  CHECK(recv_exact(r.app(), resp.size()) == resp);
  auto evs = r.events();
  REQUIRE(evs.size() == 1);
  REQUIRE(lease->matches(evs[0]));
  LeaseResult res = lease->on_event(evs[0]);
  CHECK(res.outcome == LeaseOutcome::kEnded);
  CHECK(res.outstanding == 0);
  CHECK(res.tx_status == 'I');
  CHECK(res.transactions == 1);
  auto resume = lease->finish();
  REQUIRE(resume.ok());
  CHECK(!resume->backend.interrupted());
  CHECK(!resume->client.interrupted());
  CHECK(lease->drained(r.proxy_c(), c).value());
  // Next transaction: user space.
  std::string q = pgm::query("SELECT 2");
  REQUIRE(send_all(r.app(), q));
  std::string got = recv_exact(r.proxy_c(), q.size());
  c.on_read(got.size());
  CHECK(got == q);
  CHECK(recv_available(r.pg(), 30).empty());
}

TEST_CASE("KernelLease: take back in the middle of a result, resume with the continuation" *
          doctest::skip(skip_splice_tests())) {
  SpliceRig r;
  SpliceEndpoint c{r.c, 0, 0, true}, b{r.b, 0, 0, true};
  LeaseInfo li;
  li.seq = 9;
  li.tenant_id = r.tenant;
  li.mode = SPLICE_MODE_SESSION;
  li.outstanding = 1;
  auto lease = KernelLease::start(r.eng, r.proxy_c(), c, r.proxy_b(), b, li);
  REQUIRE(lease.ok());
  std::string row = pgm::data_row(500);
  std::string end = pgm::command_complete("SELECT 1") + pgm::ready('I');
  REQUIRE(send_all(r.pg(), row.substr(0, 200)));
  CHECK(recv_exact(r.app(), 200) == row.substr(0, 200));
  auto back = lease->take_back();
  REQUIRE(back.ok());
  CHECK(back->outcome == LeaseOutcome::kHandedBack);
  CHECK(back->reason == SPLICE_R_USER);
  CHECK(back->outstanding == 1);
  auto resume = lease->finish();
  REQUIRE(resume.ok());
  CHECK(resume->backend.interrupted());
  CHECK(resume->backend.type() == 'D');
  // The rest arrives in user space: the continuation says which bytes finish the DataRow.
  std::string rest = row.substr(200) + end;
  REQUIRE(send_all(r.pg(), rest));
  std::string up = recv_exact(r.proxy_b(), rest.size());
  b.on_read(up.size());
  REQUIRE(up == rest);
  uint32_t raw = resume->backend.feed(u8(up), uint32_t(up.size()));
  CHECK(raw == row.size() - 200);
  CHECK(resume->backend.done());
  // The worker relays: fence first, then its own write lands after the kernel's bytes.
  CHECK(eventually([&] { return lease->drained(r.proxy_c(), c).value(); }));
  REQUIRE(send_all(r.proxy_c(), up));
  c.on_written(up.size());
  CHECK(recv_exact(r.app(), up.size()) == up);
  CHECK(lease->drained(r.proxy_c(), c).value());
}

TEST_CASE("auto rules: forced settings, availability, and the measured defaults") {
  AutoRules defaults;
  LeaseFacts f;
  f.engine_available = true;
  f.setting = DataPathSetting::kUserspace;
  CHECK(!choose_data_path(f, defaults).kernel);
  f.setting = DataPathSetting::kKernel;
  CHECK(choose_data_path(f, defaults).kernel);
  f.engine_available = false;
  CHECK(!choose_data_path(f, defaults).kernel);  // kernel configured but unavailable: fall back
  f.engine_available = true;
  f.setting = DataPathSetting::kAuto;
  // Measured defaults: nothing is spliced under auto.
  for (auto mode : {SPLICE_MODE_SESSION, SPLICE_MODE_TRANSACTION}) {
    f.mode = mode;
    f.needs_sql_inspection = mode != SPLICE_MODE_SESSION;
    f.expected_bytes_to_client = 1u << 30;
    CHECK(!choose_data_path(f, defaults).kernel);
    f.copy_out = true;
    CHECK(!choose_data_path(f, defaults).kernel);
    f.copy_out = false;
  }
  // Rules an operator can turn on after measuring a win on their kernel.
  AutoRules on;
  on.splice_session = true;
  on.splice_min_bytes = 8 << 20;
  f.mode = SPLICE_MODE_SESSION;
  f.needs_sql_inspection = false;
  f.expected_bytes_to_client = 0;
  CHECK(choose_data_path(f, on).kernel);
  f.mode = SPLICE_MODE_TRANSACTION;
  f.needs_sql_inspection = false;
  CHECK(!choose_data_path(f, on).kernel);  // small
  f.expected_bytes_to_client = 16 << 20;
  CHECK(choose_data_path(f, on).kernel);  // large result
  f.needs_sql_inspection = true;
  CHECK(!choose_data_path(f, on).kernel);  // the kernel cannot see pins
}
