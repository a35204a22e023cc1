#include "pool/host_table.h"

#include <doctest/doctest.h>

using namespace helios;
using namespace helios::pool;

namespace {

HostCheck primary(uint64_t lsn) {
  HostCheck c;
  c.ok = true;
  c.wal_lsn = lsn;
  return c;
}
HostCheck replica(uint64_t lsn, double delay = 0, bool paused = false) {
  HostCheck c = primary(lsn);
  c.in_recovery = true;
  c.replay_delay_s = delay;
  c.replay_paused = paused;
  return c;
}
HostCheck failed() {
  HostCheck c;
  c.error = "connection refused";
  return c;
}
HostTable table3() {
  HostLimits l;
  l.ban_time = 10 * kNanosPerSec;
  l.max_lag = 1 * kNanosPerSec;
  l.max_lag_bytes = 1000;
  return HostTable({{"a", 1}, {"b", 2}, {"c", 3}}, l);
}
const std::vector<bool> kAll{true, true, true};

}  // namespace

TEST_CASE("HostTable: the one host out of recovery is the primary; replicas are readable") {
  HostTable t = table3();
  t.record_round({replica(100), primary(100), replica(100)}, kAll, 1, 2);
  CHECK(t.primary() == 1);
  CHECK(t.readable_replica(0, 3));
  CHECK_FALSE(t.readable_replica(1, 3));
  CHECK(t.readable_replica(2, 3));
}

TEST_CASE("HostTable: a second writer does not take the role; two at once: no primary") {
  HostTable t = table3();
  t.record_round({replica(10), primary(10), replica(10)}, kAll, 1, 2);
  // Host 0 comes back as a stale writer: host 1 keeps the role, host 0 is a conflict.
  t.record_round({primary(5), primary(20), replica(20)}, kAll, 3, 4);
  CHECK(t.primary() == 1);
  CHECK(t.snapshot(5)[0].role == HostRole::kConflict);
  // Fresh table, two claim at once: neither is used.
  HostTable u = table3();
  u.record_round({primary(5), primary(20), replica(20)}, kAll, 1, 2);
  CHECK(u.primary() == -1);
}

TEST_CASE("HostTable: a failed check bans the host and clears its primary role") {
  HostTable t = table3();
  t.record_round({replica(10), primary(10), replica(10)}, kAll, 1, 2);
  auto banned = t.record_round({replica(10), failed(), replica(10)}, kAll, 3, 4);
  CHECK(banned == std::vector<size_t>{1});
  CHECK(t.primary() == -1);
  CHECK(t.banned(1, 5));
  CHECK_FALSE(t.banned(1, 4 + 10 * kNanosPerSec));
  // A promoted replica is the primary at the next round.
  t.record_round({replica(10), {}, primary(30)}, {true, false, true}, 6, 7);
  CHECK(t.primary() == 2);
}

TEST_CASE("HostTable: lag in time or bytes, or paused replay, stops reads") {
  HostTable t = table3();
  t.record_round({replica(100, 2.0), primary(100), replica(100)}, kAll, 1, 2);
  CHECK_FALSE(t.readable_replica(0, 3));  // 2 s > max_lag
  t.record_round({replica(100), primary(5000), replica(4500)}, kAll, 3, 4);
  CHECK_FALSE(t.readable_replica(0, 5));  // 4900 bytes behind > 1000
  CHECK(t.readable_replica(2, 5));        // 500 bytes behind
  t.record_round({replica(5000), primary(5000), replica(5000, 0, true)}, kAll, 5, 6);
  CHECK(t.readable_replica(0, 7));
  CHECK_FALSE(t.readable_replica(2, 7));  // paused
}

TEST_CASE("HostTable: read-your-writes uses the first round that started after the write") {
  HostTable t = table3();
  t.record_round({replica(100), primary(100), replica(100)}, kAll, 10, 11);
  t.record_round({replica(150), primary(200), replica(100)}, kAll, 20, 21);
  t.record_round({replica(300), primary(300), replica(250)}, kAll, 30, 31);
  CHECK(t.primary_lsn_after(15) == 200);
  CHECK(t.primary_lsn_after(5) == 100);
  CHECK(t.primary_lsn_after(30) == 0);  // no round started after it yet
  CHECK(t.replayed(0, 200));
  CHECK_FALSE(t.replayed(2, 300));
}

TEST_CASE("parse_lsn") {
  CHECK(parse_lsn("0/16B3740") == 0x16B3740);
  CHECK(parse_lsn("1/0") == (uint64_t(1) << 32));
  CHECK(parse_lsn("junk") == 0);
  CHECK(parse_lsn("0/") == 0);
}
