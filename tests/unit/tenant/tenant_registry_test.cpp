#include <doctest/doctest.h>
#include <malloc.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tenant/tenant_registry.h"

using namespace helios;
using namespace helios::tenant;

namespace {

TenantLimits conns(uint32_t max_connections) {
  TenantLimits l;
  l.max_connections = max_connections;
  return l;
}

std::vector<TenantRule> seed_rules() {
  // seed 000's [[tenant_quotas.limits]]
  TenantLimits tenant = conns(50), premium = conns(200);
  tenant.max_qps = 1000;
  tenant.max_transaction_duration = 30 * kNanosPerSec;
  premium.max_qps = 5000;
  premium.max_transaction_duration = 300 * kNanosPerSec;
  return {{"tenant_*", tenant}, {"premium_tenant_*", premium}};
}

// Sanitizer runtimes replace malloc, so glibc's accounting sees nothing there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kHeapMeasurable = false;
#else
constexpr bool kHeapMeasurable = true;
#endif

size_t heap_in_use() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

}  // namespace

TEST_CASE("TenantRegistry: one stable state per name, dense indices") {
  TenantRegistry reg(1000, conns(10));
  TenantState* a = reg.get_or_create("tenant_a", 0);
  TenantState* b = reg.get_or_create("tenant_b", 0);
  CHECK(a != b);
  CHECK(reg.get_or_create("tenant_a", 0) == a);
  CHECK(reg.find("tenant_a") == a);
  CHECK(reg.find("tenant_c") == nullptr);
  CHECK(a->index() == 0);
  CHECK(b->index() == 1);
  CHECK(reg.at(1) == b);
  CHECK(reg.at(2) == nullptr);
  CHECK(reg.size() == 2);
  CHECK(a->max_connections() == 10);  // default limits

  // Names clip to 63 bytes: these two are one tenant.
  std::string base(63, 'q');
  CHECK(reg.get_or_create(base + "-one", 0) == reg.get_or_create(base + "-two", 0));

  // Many names, with index growth: every name still resolves to its own state.
  std::vector<TenantState*> states;
  for (int i = 0; i < 900; ++i) states.push_back(reg.get_or_create("t" + std::to_string(i), 0));
  for (int i = 0; i < 900; ++i) REQUIRE(reg.find("t" + std::to_string(i)) == states[size_t(i)]);
  CHECK(reg.find("tenant_a") == a);
  std::set<uint32_t> seen;
  reg.for_each([&](TenantState& s) { seen.insert(s.index()); });
  CHECK(seen.size() == reg.size());
  CHECK(*seen.rbegin() == reg.size() - 1);
}

TEST_CASE("TenantRegistry: limits come from the most specific rule, reload updates in place") {
  TenantRegistry reg(1000, conns(5));
  REQUIRE(reg.apply_limits(seed_rules(), conns(5), 0));
  TenantState* acme = reg.get_or_create("tenant_acme", 0);
  TenantState* big = reg.get_or_create("premium_tenant_big", 0);
  TenantState* other = reg.get_or_create("someone_else", 0);
  CHECK(acme->max_connections() == 50);
  CHECK(acme->rule() == 0);
  CHECK(acme->limits().max_qps == 1000);
  CHECK(big->max_connections() == 200);
  CHECK(big->rule() == 1);
  CHECK(big->max_transaction_duration() == 300 * kNanosPerSec);
  CHECK(other->max_connections() == 5);
  CHECK(other->rule() == -1);

  // Reload: a new, more specific rule for acme; premium rule dropped.
  auto rules = seed_rules();
  rules.erase(rules.begin() + 1);
  rules.push_back({"tenant_acme", conns(7)});
  REQUIRE(reg.apply_limits(rules, conns(6), 0));
  CHECK(reg.get_or_create("tenant_acme", 0) == acme);
  CHECK(acme->max_connections() == 7);
  CHECK(acme->rule() == 1);
  CHECK(big->max_connections() == 6);  // now default
  CHECK(big->rule() == -1);
  CHECK(other->max_connections() == 6);
  CHECK(reg.get_or_create("tenant_new", 0)->max_connections() == 50);

  // An invalid pattern changes nothing.
  rules.push_back({"tenant_[x", conns(1)});
  Status st = reg.apply_limits(rules, conns(1), 0);
  CHECK_FALSE(st.ok());
  CHECK(st.error().message.find("tenant_[x") != std::string::npos);
  CHECK(acme->max_connections() == 7);
  CHECK(reg.get_or_create("tenant_newer", 0)->max_connections() == 50);
}

TEST_CASE("TenantRegistry: bounded; extra names share the overflow state") {
  TenantRegistry reg(3, conns(9));
  REQUIRE(reg.apply_limits({{"t*", conns(1)}}, conns(9), 0));
  TenantState* a = reg.get_or_create("ta", 0);
  reg.get_or_create("tb", 0);
  reg.get_or_create("tc", 0);
  CHECK(reg.other() == nullptr);
  TenantState* d = reg.get_or_create("td", 0);
  TenantState* e = reg.get_or_create("te", 0);
  CHECK(d == e);
  CHECK(d == reg.other());
  CHECK(d->name() == TenantRegistry::kOtherName);
  CHECK(d->max_connections() == 9);  // default limits, not t*'s
  CHECK(d->index() == 3);
  CHECK(reg.overflowed() == 2);
  CHECK(reg.find("td") == nullptr);
  CHECK(reg.get_or_create("ta", 0) == a);  // known names are unaffected
  CHECK(reg.overflowed() == 2);
  CHECK(reg.size() == 4);
  REQUIRE(reg.apply_limits({{"*", conns(2)}}, conns(8), 0));
  CHECK(d->max_connections() == 8);
  CHECK(a->max_connections() == 2);
}

TEST_CASE("TenantRegistry: concurrent first sight creates each tenant once") {
  TenantRegistry reg;
  constexpr int kThreads = 4, kNames = 2000;
  std::vector<std::vector<TenantState*>> got(kThreads, std::vector<TenantState*>(kNames));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kNames; ++i) {
        int k = (t % 2) ? kNames - 1 - i : i;
        got[size_t(t)][size_t(k)] = reg.get_or_create("tenant_" + std::to_string(k), 0);
      }
    });
  for (auto& th : threads) th.join();
  CHECK(reg.size() == kNames);
  for (int t = 1; t < kThreads; ++t) CHECK(got[size_t(t)] == got[0]);
}

TEST_CASE("TenantRegistry: per-tenant memory, measured, is at most 256 bytes") {
  constexpr int kTenants = 10000;
  std::vector<std::string> names;
  names.reserve(kTenants);
  for (int i = 0; i < kTenants; ++i) names.push_back("tenant_customer_" + std::to_string(i));

  TenantRegistry reg;
  size_t before = heap_in_use();
  for (const auto& n : names) reg.get_or_create(n, 0);
  size_t grown = heap_in_use() - before;
  double per_tenant = double(grown) / kTenants;
  INFO("sizeof(TenantState) = " << sizeof(TenantState)
                                << ", measured heap growth per tenant = " << per_tenant
                                << " B, reported = " << double(reg.memory_bytes()) / kTenants
                                << " B");
  CHECK(reg.size() == kTenants);
  if (kHeapMeasurable) {
    CHECK(per_tenant > sizeof(TenantState) * 0.9);  // the measurement sees the states
    CHECK(per_tenant <= 256);
  }
  CHECK(double(reg.memory_bytes()) / kTenants <= 256);
}

TEST_CASE("TenantRegistry: past max_tenants, released dynamic tenants are evicted LRU") {
  TenantRegistry reg(3, conns(9));
  REQUIRE(reg.apply_limits({{"victim", conns(2)}, {"t*", conns(4)}}, conns(9), 0));
  TenantState* victim = reg.acquire("victim", 0);
  reg.release(victim);  // configured: never evicted, even with no holders
  TenantState* a = reg.acquire("ta", 0);
  TenantState* b = reg.acquire("tb", 0);
  reg.release(b);
  reg.release(a);  // a released after b: b is the least recently used
  TenantState* c = reg.acquire("tc", 0);
  CHECK(c == b);  // b's slot, rebuilt for tc
  CHECK(c->name() == "tc");
  CHECK(c->max_connections() == 4);
  CHECK(reg.find("tb") == nullptr);
  CHECK(reg.find("ta") == a);
  CHECK(reg.evicted() == 1);
  TenantState* d = reg.acquire("td", 0);  // evicts ta
  CHECK(d == a);
  CHECK(reg.find("ta") == nullptr);
  // Now every state is held (tc, td) or configured (victim): new names overflow.
  TenantState* e = reg.acquire("te", 0);
  CHECK(e == reg.other());
  CHECK(reg.overflowed() == 1);
  CHECK(reg.find("victim") == victim);
  CHECK(victim->max_connections() == 2);
  reg.release(e);
  reg.release(c);
  CHECK(reg.acquire("tf", 0) == c);  // tc was released: its slot serves again
  CHECK(reg.find("victim") == victim);
  CHECK(reg.size() == 4);  // 3 named + the overflow state
}

TEST_CASE("TenantRegistry: protected names and lookups survive many evictions") {
  TenantRegistry reg(16, conns(1));
  REQUIRE(reg.apply_limits({}, conns(1), 0));
  reg.protect("default");
  TenantState* def = reg.acquire("default", 0);
  reg.release(def);
  std::vector<std::string> names;
  for (int i = 0; i < 2000; ++i) {
    std::string n = "flood_" + std::to_string(i);
    TenantState* s = reg.acquire(n, 0);
    REQUIRE(s->name() == n);
    reg.release(s);
    // Every name still registered is findable (probing stays intact after deletions).
    if (i >= 15 && i % 97 == 0) {
      int found = 0;
      reg.for_each([&](const TenantState& t) { found += t.name().starts_with("flood_"); });
      CHECK(found == 15);
    }
  }
  CHECK(reg.find("default") == def);
  CHECK(reg.find("flood_1999") != nullptr);
  CHECK(reg.find("flood_0") == nullptr);
  CHECK(reg.overflowed() == 0);
  int findable = 0;
  for (int i = 1985; i < 2000; ++i) findable += reg.find("flood_" + std::to_string(i)) != nullptr;
  CHECK(findable == 15);
}
