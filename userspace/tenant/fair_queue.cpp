#include "tenant/fair_queue.h"

#include <algorithm>

namespace helios::tenant {

void FairQueue::reserve(uint32_t tenants) {
  if (tenants > slots_.size()) slots_.resize(tenants);
}

FairQueue::Slot& FairQueue::slot(uint32_t tenant) {
  if (tenant >= slots_.size()) {
    // First sight of this index: grow geometrically so a burst of new tenants stays amortized.
    size_t want = std::max<size_t>(size_t(tenant) + 1, slots_.size() * 2);
    slots_.resize(want);
  }
  return slots_[tenant];
}

void FairQueue::set_weight(uint32_t tenant, uint32_t weight) {
  Slot& s = slot(tenant);
  s.weight = std::max<uint32_t>(1, weight);
  s.deficit = std::min(s.deficit, s.weight);
}

uint32_t FairQueue::weight(uint32_t tenant) const {
  return tenant < slots_.size() ? slots_[tenant].weight : 1;
}

size_t FairQueue::size_for(uint32_t tenant) const {
  return tenant < slots_.size() ? slots_[tenant].count : 0;
}

void FairQueue::join_round(uint32_t t) {
  Slot& s = slots_[t];
  s.deficit = 0;
  if (cursor_ == kNone) {
    s.ring_prev = s.ring_next = t;
    cursor_ = t;
  } else {
    // Just before the cursor: the end of the current round.
    uint32_t last = slots_[cursor_].ring_prev;
    s.ring_prev = last;
    s.ring_next = cursor_;
    slots_[last].ring_next = t;
    slots_[cursor_].ring_prev = t;
  }
  ++active_;
}

void FairQueue::leave_round(uint32_t t) {
  Slot& s = slots_[t];
  if (s.ring_next == t) {
    cursor_ = kNone;
  } else {
    slots_[s.ring_prev].ring_next = s.ring_next;
    slots_[s.ring_next].ring_prev = s.ring_prev;
    if (cursor_ == t) cursor_ = s.ring_next;
  }
  s.ring_prev = s.ring_next = kNone;
  s.deficit = 0;
  --active_;
}

void FairQueue::push(Node* n) {
  Slot& s = slot(n->tenant);
  n->next = nullptr;
  n->prev = s.tail;
  if (s.tail)
    s.tail->next = n;
  else
    s.head = n;
  s.tail = n;
  n->queued = true;
  ++size_;
  if (++s.count == 1) join_round(n->tenant);
}

bool FairQueue::remove(Node* n) {
  if (!n->queued || n->tenant >= slots_.size()) return false;
  Slot& s = slots_[n->tenant];
  if (n->prev)
    n->prev->next = n->next;
  else
    s.head = n->next;
  if (n->next)
    n->next->prev = n->prev;
  else
    s.tail = n->prev;
  n->prev = n->next = nullptr;
  n->queued = false;
  --size_;
  if (--s.count == 0) leave_round(n->tenant);
  return true;
}

FairQueue::Node* FairQueue::pop() {
  if (cursor_ == kNone) return nullptr;
  uint32_t t = cursor_;
  Slot& s = slots_[t];
  if (s.deficit == 0) s.deficit = s.weight;  // its turn starts
  Node* n = s.head;
  s.head = n->next;
  if (s.head)
    s.head->prev = nullptr;
  else
    s.tail = nullptr;
  n->prev = n->next = nullptr;
  n->queued = false;
  --size_;
  --s.deficit;
  if (--s.count == 0)
    leave_round(t);
  else if (s.deficit == 0)
    cursor_ = s.ring_next;  // quantum spent: next tenant's turn
  return n;
}

}  // namespace helios::tenant
