#include <doctest/doctest.h>

#include <deque>
#include <string>
#include <vector>

#include "tenant/fair_queue.h"

using namespace helios::tenant;

namespace {

struct Waiter {
  FairQueue::Node node;  // first member: Node* converts back with a cast
  int id = 0;
};

Waiter* as_waiter(FairQueue::Node* n) {
  return reinterpret_cast<Waiter*>(n);
}

// Owns waiters with stable addresses.
struct Waiters {
  std::deque<Waiter> all;
  Waiter* add(uint32_t tenant, int id) {
    all.emplace_back();
    all.back().node.tenant = tenant;
    all.back().id = id;
    return &all.back();
  }
  void push(FairQueue& q, uint32_t tenant, int count, int first_id = 0) {
    for (int i = 0; i < count; ++i) q.push(&add(tenant, first_id + i)->node);
  }
};

// Pops n waiters and returns their tenants as a string of letters ('A' + tenant).
std::string pop_tenants(FairQueue& q, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    FairQueue::Node* node = q.pop();
    if (!node) break;
    out.push_back(char('A' + node->tenant));
  }
  return out;
}

}  // namespace

TEST_CASE("FairQueue: exact weighted shares while tenants are backlogged") {
  FairQueue q;
  Waiters w;
  q.set_weight(0, 3);
  q.set_weight(1, 1);
  w.push(q, 0, 10000);
  w.push(q, 1, 10000);
  CHECK(pop_tenants(q, 8) == "AAABAAAB");
  int counts[2] = {0, 0};
  for (int i = 0; i < 4000; ++i) counts[q.pop()->tenant]++;
  CHECK(counts[0] == 3000);  // 75%
  CHECK(counts[1] == 1000);  // 25%
  CHECK(q.size() == 20000 - 4008);

  SUBCASE("three tenants 5:2:1") {
    FairQueue r;
    Waiters w3;
    r.set_weight(0, 5);
    r.set_weight(1, 2);
    r.set_weight(2, 1);
    for (uint32_t t = 0; t < 3; ++t) w3.push(r, t, 5000);
    int c[3] = {0, 0, 0};
    for (int i = 0; i < 8 * 500; ++i) c[r.pop()->tenant]++;
    CHECK(c[0] == 2500);
    CHECK(c[1] == 1000);
    CHECK(c[2] == 500);
  }
}

TEST_CASE("FairQueue: FIFO within a tenant") {
  FairQueue q;
  Waiters w;
  w.push(q, 0, 100, 0);
  w.push(q, 1, 100, 1000);
  int next_a = 0, next_b = 1000;
  while (FairQueue::Node* n = q.pop()) {
    Waiter* x = as_waiter(n);
    if (n->tenant == 0)
      CHECK(x->id == next_a++);
    else
      CHECK(x->id == next_b++);
  }
  CHECK(next_a == 100);
  CHECK(next_b == 1100);
  CHECK(q.empty());
  CHECK(q.pop() == nullptr);
}

TEST_CASE("FairQueue: a noisy tenant delays another tenant's waiter by at most one round") {
  FairQueue q;
  Waiters w;
  q.set_weight(0, 3);  // noisy A
  q.set_weight(2, 2);  // C, also backlogged
  q.set_weight(1, 1);  // B: a single waiter
  w.push(q, 0, 1000);
  w.push(q, 2, 1000);
  for (int start = 0; start < 10; ++start) {
    CAPTURE(start);
    pop_tenants(q, start);  // arrive at any point of a round
    q.push(&w.add(1, 42)->node);
    int pops = 0;
    for (;;) {
      FairQueue::Node* n = q.pop();
      REQUIRE(n != nullptr);
      ++pops;
      if (n->tenant == 1) break;
    }
    CHECK(pops <= 3 + 2 + 1);  // A's and C's quanta, then B
  }
}

TEST_CASE("FairQueue: remove from the head, middle and tail") {
  FairQueue q;
  Waiters w;
  std::vector<Waiter*> a;
  for (int i = 0; i < 5; ++i) {
    a.push_back(w.add(0, i));
    q.push(&a.back()->node);
  }
  CHECK(q.remove(&a[2]->node));
  CHECK_FALSE(q.remove(&a[2]->node));  // already gone
  CHECK(q.remove(&a[0]->node));
  CHECK(q.remove(&a[4]->node));
  CHECK(q.size() == 2);
  CHECK(q.size_for(0) == 2);
  CHECK(as_waiter(q.pop())->id == 1);
  CHECK(as_waiter(q.pop())->id == 3);
  CHECK(q.pop() == nullptr);
  CHECK_FALSE(q.remove(&a[1]->node));  // popped nodes are not queued
  Waiter never_pushed;
  CHECK_FALSE(q.remove(&never_pushed.node));
}

TEST_CASE("FairQueue: empty tenants leave the round") {
  FairQueue q;
  Waiters w;
  w.push(q, 0, 100);
  Waiter* b = w.add(1, 0);
  q.push(&b->node);
  w.push(q, 2, 100);
  CHECK(q.active_tenants() == 3);
  CHECK(q.remove(&b->node));  // B cancelled: only A and C remain
  CHECK(q.active_tenants() == 2);
  CHECK(q.size_for(1) == 0);
  CHECK(pop_tenants(q, 6) == "ACACAC");

  // A drains completely; C is served alone; A returns at the end of the round.
  FairQueue r;
  Waiters w2;
  w2.push(r, 0, 1);
  w2.push(r, 1, 10);
  CHECK(pop_tenants(r, 3) == "ABB");
  CHECK(r.active_tenants() == 1);
  w2.push(r, 0, 2);
  CHECK(pop_tenants(r, 5) == "BABAB");
}

TEST_CASE("FairQueue: an idle tenant banks no credit") {
  FairQueue q;
  Waiters w;
  q.set_weight(0, 4);
  w.push(q, 0, 1);  // A uses 1 of its 4 and leaves
  w.push(q, 1, 100);
  CHECK(pop_tenants(q, 2) == "AB");
  w.push(q, 0, 100);
  // A rejoins at the end of the round (after B's next turn) with a fresh quantum of 4, not
  // 4 + the 3 it left unused.
  CHECK(pop_tenants(q, 7) == "BAAAABA");
}

TEST_CASE("FairQueue: weight changes and slot allocation") {
  FairQueue q(4);
  Waiters w;
  CHECK(q.weight(3) == 1);
  CHECK(q.weight(100) == 1);
  q.set_weight(0, 0);  // treated as 1
  CHECK(q.weight(0) == 1);
  w.push(q, 0, 10);
  w.push(q, 1, 10);
  CHECK(pop_tenants(q, 4) == "ABAB");
  q.set_weight(1, 2);
  CHECK(pop_tenants(q, 6) == "ABBABB");
  w.push(q, 1000, 1);  // a new, large tenant index grows the slots
  CHECK(q.size_for(1000) == 1);
  CHECK(q.size() == 11);
}
