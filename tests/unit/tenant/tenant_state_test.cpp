#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tenant/tenant_state.h"

using namespace helios;
using namespace helios::tenant;

TEST_CASE("clip_tenant_name keeps 63 bytes and never splits a UTF-8 sequence") {
  CHECK(clip_tenant_name("tenant_acme") == "tenant_acme");
  std::string exact(63, 'x');
  CHECK(clip_tenant_name(exact) == exact);
  std::string longer(70, 'y');
  CHECK(clip_tenant_name(longer) == std::string(63, 'y'));
  std::string two_byte = std::string(62, 'a') + "\xc3\xa9" + "zz";  // é straddles the cut
  CHECK(clip_tenant_name(two_byte) == std::string(62, 'a'));
  std::string three_byte = std::string(61, 'a') + "\xe2\x82\xac" + "zz";  // €
  CHECK(clip_tenant_name(three_byte) == std::string(61, 'a'));
  std::string fits = std::string(61, 'a') + "\xc3\xa9" + "zz";  // é ends at byte 63
  CHECK(clip_tenant_name(fits) == std::string(61, 'a') + "\xc3\xa9");
}

TEST_CASE("TenantState stores its name inline and fits in 256 bytes") {
  CHECK(sizeof(TenantState) <= 256);
  TenantState s(7, std::string(100, 'n'), TenantLimits{}, 0);
  CHECK(s.index() == 7);
  CHECK(s.name() == std::string(63, 'n'));
}

TEST_CASE("TenantState: max_connections is exact and counts rejections") {
  TenantLimits l;
  l.max_connections = 50;
  TenantState s(0, "tenant_a", l, 0);
  for (int i = 0; i < 50; ++i) REQUIRE(s.try_admit_connection());
  CHECK_FALSE(s.try_admit_connection());
  CHECK(s.client_connections() == 50);
  CHECK(s.rejections(Rejection::kConnections) == 1);
  s.release_connection();
  CHECK(s.try_admit_connection());
  CHECK_FALSE(s.try_admit_connection());
  CHECK(s.rejections(Rejection::kConnections) == 2);

  TenantState unlimited(1, "free_for_all", TenantLimits{}, 0);
  for (int i = 0; i < 10000; ++i) REQUIRE(unlimited.try_admit_connection());
  CHECK(unlimited.client_connections() == 10000);
}

TEST_CASE("TenantState: limits hold exactly across threads") {
  TenantLimits l;
  l.max_connections = 100;
  l.max_active = 8;
  TenantState s(0, "tenant_t", l, 0);
  constexpr int kThreads = 4;

  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (s.try_admit_connection()) admitted.fetch_add(1);
    });
  for (auto& th : threads) th.join();
  threads.clear();
  CHECK(admitted.load() == 100);
  CHECK(s.client_connections() == 100);
  CHECK(s.rejections(Rejection::kConnections) == kThreads * 1000 - 100);

  // Churn on max_active: the number of holders never exceeds the limit.
  std::atomic<int> holders{0}, peak{0}, begun{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (!s.try_begin_active()) continue;
        begun.fetch_add(1);
        int h = holders.fetch_add(1) + 1;
        int p = peak.load();
        while (h > p && !peak.compare_exchange_weak(p, h)) {
        }
        holders.fetch_sub(1);
        s.end_active();
      }
    });
  for (auto& th : threads) th.join();
  CHECK(peak.load() <= 8);
  CHECK(begun.load() > 0);
  CHECK(s.active_leases() == 0);
}

TEST_CASE("TenantState: max_active refuses without counting a rejection") {
  TenantLimits l;
  l.max_active = 2;
  TenantState s(0, "t", l, 0);
  CHECK(s.try_begin_active());
  CHECK(s.try_begin_active());
  CHECK_FALSE(s.try_begin_active());
  CHECK(s.rejections(Rejection::kConnections) == 0);
  s.end_active();
  CHECK(s.try_begin_active());
}

TEST_CASE("TenantState: QPS bucket defaults its burst to one second of max_qps") {
  TenantLimits l;
  l.max_qps = 200;
  const Nanos t0 = 1000 * kNanosPerSec;
  TenantState s(0, "t", l, t0);
  int taken = 0;
  while (s.try_take_qps(t0)) ++taken;
  CHECK(taken == 200);
  CHECK(s.qps_wait(t0) == 5 * kNanosPerMilli);
  CHECK(s.try_take_qps(t0 + 5 * kNanosPerMilli));

  l.qps_burst = 10;
  TenantState b(1, "t2", l, t0);
  taken = 0;
  while (b.try_take_qps(t0)) ++taken;
  CHECK(taken == 10);
}

TEST_CASE("TenantState: reload updates limits in place and keeps the bucket's fill") {
  TenantLimits l;
  l.max_connections = 5;
  l.max_qps = 100;
  l.qps_burst = 100;
  l.weight = 3;
  l.qps_max_wait = 50 * kNanosPerMilli;
  TenantState s(0, "t", l, 0);
  CHECK(s.limits() == l);
  for (int i = 0; i < 60; ++i) REQUIRE(s.try_take_qps(0));

  TenantLimits l2 = l;
  l2.max_connections = 7;
  l2.max_transaction_duration = kNanosPerSec;
  l2.pool_mode_override = 2;
  l2.tier = 1;
  s.set_limits(l2, 0);
  CHECK(s.limits() == l2);
  CHECK(s.max_connections() == 7);
  CHECK(s.pool_mode_override() == 2);
  int left = 0;
  while (s.try_take_qps(0)) ++left;
  CHECK(left == 40);  // qps unchanged: the bucket was not refilled by the reload

  TenantLimits l3 = l2;
  l3.max_qps = 0;  // unlimited
  s.set_limits(l3, 0);
  for (int i = 0; i < 1000; ++i) REQUIRE(s.try_take_qps(0));

  TenantLimits zero_weight = l3;
  zero_weight.weight = 0;
  s.set_limits(zero_weight, 0);
  CHECK(s.weight() == 1);
}

TEST_CASE("TenantState: current_qps over a sliding one-second window, avg_query_ms") {
  TenantState s(0, "t", TenantLimits{}, 0);
  const Nanos t10 = 10 * kNanosPerSec;
  for (int i = 0; i < 100; ++i) s.record_query(t10 + i * 9 * kNanosPerMilli, kNanosPerMilli);
  CHECK(s.current_qps(t10 + 999 * kNanosPerMilli) == doctest::Approx(100));
  // Half-way through the next second: half of the previous second is still in the window.
  CHECK(s.current_qps(t10 + 1500 * kNanosPerMilli) == doctest::Approx(50));
  for (int i = 0; i < 40; ++i) s.record_query(t10 + 1500 * kNanosPerMilli, 3 * kNanosPerMilli);
  CHECK(s.current_qps(t10 + 1500 * kNanosPerMilli) == doctest::Approx(90));
  CHECK(s.current_qps(t10 + 2250 * kNanosPerMilli) == doctest::Approx(30));
  CHECK(s.current_qps(t10 + 3000 * kNanosPerMilli) == doctest::Approx(0));
  // A gap of several seconds forgets the old counts.
  s.record_query(t10 + 5 * kNanosPerSec, kNanosPerMilli);
  CHECK(s.current_qps(t10 + 5 * kNanosPerSec) == doctest::Approx(1));

  TenantStats st = s.stats(t10 + 5 * kNanosPerSec);
  CHECK(st.queries_total == 141);
  CHECK(st.avg_query_ms == doctest::Approx((100.0 * 1 + 40.0 * 3 + 1) / 141));
  CHECK(st.name == "t");
}

TEST_CASE("TenantState: stats snapshot") {
  TenantLimits l;
  l.max_connections = 1;
  TenantState s(3, "tenant_x", l, 0);
  CHECK(s.try_admit_connection());
  CHECK_FALSE(s.try_admit_connection());
  CHECK(s.try_begin_active());
  s.enter_queue();
  s.enter_queue();
  s.leave_queue();
  s.record_transaction();
  s.record_rejection(Rejection::kQps);
  s.record_rejection(Rejection::kAcquireTimeout);
  s.set_rule(4);
  TenantStats st = s.stats(0);
  CHECK(st.index == 3);
  CHECK(st.rule == 4);
  CHECK(st.client_connections == 1);
  CHECK(st.active_leases == 1);
  CHECK(st.queued == 1);
  CHECK(st.transactions_total == 1);
  CHECK(st.rejections[size_t(Rejection::kConnections)] == 1);
  CHECK(st.rejections[size_t(Rejection::kQps)] == 1);
  CHECK(st.rejections[size_t(Rejection::kAcquireTimeout)] == 1);
  CHECK(st.rejections[size_t(Rejection::kTransactionDuration)] == 0);
  CHECK(std::string(rejection_name(Rejection::kTransactionDuration)) == "transaction_duration");
}
