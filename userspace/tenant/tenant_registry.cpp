#include "tenant/tenant_registry.h"

#include <functional>
#include <new>
#include <string>

namespace helios::tenant {
namespace {

constexpr std::align_val_t kStateAlign{alignof(TenantState)};

size_t hash_name(std::string_view name) {
  return std::hash<std::string_view>{}(name);
}

bool is_literal_pattern(std::string_view pattern) {
  return pattern.find_first_of("*?[\\") == std::string_view::npos;
}

}  // namespace

TenantRegistry::TenantRegistry(uint32_t max_tenants, TenantLimits default_limits)
    : max_tenants_(std::max<uint32_t>(1, max_tenants)),
      // +1: room for the overflow state after max_tenants named ones.
      slab_count_((max_tenants_ + 1 + kSlabStates - 1) / kSlabStates),
      slabs_(new std::atomic<TenantState*>[slab_count_]),
      entry_slabs_(new std::unique_ptr<Entry[]>[slab_count_]),
      default_limits_(default_limits) {
  for (uint32_t i = 0; i < slab_count_; ++i) slabs_[i].store(nullptr, std::memory_order_relaxed);
}

TenantRegistry::~TenantRegistry() {
  uint32_t n = size();
  for (uint32_t i = 0; i < n; ++i) at(i)->~TenantState();
  for (uint32_t s = 0; s < slab_count_; ++s)
    if (TenantState* slab = slabs_[s].load(std::memory_order_relaxed))
      ::operator delete(static_cast<void*>(slab), kStateAlign);
}

TenantState* TenantRegistry::at(uint32_t index) const {
  if (index >= size()) return nullptr;
  TenantState* slab = slabs_[index / kSlabStates].load(std::memory_order_acquire);
  return slab + index % kSlabStates;
}

TenantState* TenantRegistry::create_locked(std::string_view clipped, bool overflow, Nanos now) {
  uint32_t index = size_.load(std::memory_order_relaxed);
  std::atomic<TenantState*>& slot = slabs_[index / kSlabStates];
  TenantState* slab = slot.load(std::memory_order_relaxed);
  if (!slab) {
    slab =
        static_cast<TenantState*>(::operator new(sizeof(TenantState) * kSlabStates, kStateAlign));
    slot.store(slab, std::memory_order_release);
    entry_slabs_[index / kSlabStates] = std::make_unique<Entry[]>(kSlabStates);
  }
  int16_t rule = -1;
  const TenantLimits& limits = overflow ? default_limits_ : limits_for_locked(clipped, &rule);
  TenantState* state = new (slab + index % kSlabStates) TenantState(index, clipped, limits, now);
  if (on_create_) on_create_(*state);
  state->set_rule(rule);
  entry(index) = Entry{};
  if (!overflow && protected_name_locked(clipped, rule)) set_protected_locked(index);
  size_.store(index + 1, std::memory_order_release);  // publishes the constructed state
  return state;
}

bool TenantRegistry::protected_name_locked(std::string_view clipped, int16_t rule) const {
  if (rule >= 0 && size_t(rule) < rule_literal_.size() && rule_literal_[size_t(rule)]) return true;
  for (const std::string& n : protected_names_)
    if (clip_tenant_name(n) == clipped) return true;
  return false;
}

void TenantRegistry::set_protected_locked(uint32_t index) {
  unlist_locked(index);
  entry(index).prev = kProtectedMark;
}

void TenantRegistry::unlist_locked(uint32_t index) {
  if (!listed_locked(index)) return;
  Entry& e = entry(index);
  if (e.prev != kEmptySlot)
    entry(e.prev).next = e.next;
  else
    lru_head_ = e.next;
  if (e.next != kEmptySlot)
    entry(e.next).prev = e.prev;
  else
    lru_tail_ = e.prev;
  e.prev = e.next = kEmptySlot;
}

void TenantRegistry::list_locked(uint32_t index) {
  if (listed_locked(index) || protected_locked(index) || held_.contains(index)) return;
  Entry& e = entry(index);
  e.prev = lru_tail_;
  e.next = kEmptySlot;
  if (lru_tail_ != kEmptySlot)
    entry(lru_tail_).next = index;
  else
    lru_head_ = index;
  lru_tail_ = index;
}

// Linear probing: removing a slot shifts later members of its cluster back, so every lookup
// still finds its name before an empty slot.
void TenantRegistry::erase_slot_locked(uint32_t pos) {
  size_t mask = index_.size() - 1;
  size_t i = pos;
  for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
    uint32_t v = index_[j];
    if (v == kEmptySlot) break;
    size_t home = hash_name(at(v)->name()) & mask;
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (!stays) {
      index_[i] = v;
      i = j;
    }
  }
  index_[i] = kEmptySlot;
}

TenantState* TenantRegistry::evict_for_locked(std::string_view clipped, size_t hash, Nanos now) {
  uint32_t victim = lru_head_;
  if (victim == kEmptySlot) return nullptr;
  unlist_locked(victim);
  TenantState* old = at(victim);
  erase_slot_locked(find_slot_locked(old->name(), hash_name(old->name())));
  int16_t rule = -1;
  const TenantLimits& limits = limits_for_locked(clipped, &rule);
  old->~TenantState();
  TenantState* state = new (old) TenantState(victim, clipped, limits, now);
  if (on_create_) on_create_(*state);
  state->set_rule(rule);
  entry(victim) = Entry{};
  if (protected_name_locked(clipped, rule)) set_protected_locked(victim);
  index_[find_slot_locked(clipped, hash)] = victim;
  evicted_.fetch_add(1, std::memory_order_relaxed);
  return state;
}

const TenantLimits& TenantRegistry::limits_for_locked(std::string_view name, int16_t* rule) const {
  int r = matcher_.match(name);
  *rule = static_cast<int16_t>(r);
  return r >= 0 ? rule_limits_[size_t(r)] : default_limits_;
}

uint32_t TenantRegistry::find_slot_locked(std::string_view clipped, size_t hash) const {
  size_t mask = index_.size() - 1;
  for (size_t pos = hash & mask;; pos = (pos + 1) & mask) {
    uint32_t v = index_[pos];
    if (v == kEmptySlot || at(v)->name() == clipped) return uint32_t(pos);
  }
}

void TenantRegistry::grow_index_locked() {
  std::vector<uint32_t> old = std::move(index_);
  index_.assign(old.empty() ? 16 : old.size() * 2, kEmptySlot);
  for (uint32_t v : old) {
    if (v == kEmptySlot) continue;
    std::string_view name = at(v)->name();
    index_[find_slot_locked(name, hash_name(name))] = v;
  }
}

TenantState* TenantRegistry::get_or_create(std::string_view name, Nanos now) {
  std::lock_guard lock(mu_);
  return lookup_or_create_locked(clip_tenant_name(name), now);
}

TenantState* TenantRegistry::acquire(std::string_view name, Nanos now) {
  std::lock_guard lock(mu_);
  TenantState* s = lookup_or_create_locked(clip_tenant_name(name), now);
  unlist_locked(s->index());
  ++held_[s->index()];
  return s;
}

void TenantRegistry::release(TenantState* state) {
  if (!state) return;
  std::lock_guard lock(mu_);
  auto it = held_.find(state->index());
  if (it == held_.end()) return;
  if (--it->second > 0) return;
  held_.erase(it);
  if (state != other_.load(std::memory_order_relaxed)) list_locked(state->index());
}

void TenantRegistry::protect(std::string_view name) {
  std::string_view clipped = clip_tenant_name(name);
  std::lock_guard lock(mu_);
  bool known = false;
  for (const std::string& n : protected_names_) known = known || n == clipped;
  if (!known) protected_names_.emplace_back(clipped);
  if (index_.empty()) return;
  uint32_t v = index_[find_slot_locked(clipped, hash_name(clipped))];
  if (v == kEmptySlot) return;
  set_protected_locked(v);
}

TenantState* TenantRegistry::lookup_or_create_locked(std::string_view clipped, Nanos now) {
  size_t hash = hash_name(clipped);
  if (!index_.empty()) {
    uint32_t v = index_[find_slot_locked(clipped, hash)];
    if (v != kEmptySlot) return at(v);
  }
  if (named_ >= max_tenants_) {
    if (TenantState* s = evict_for_locked(clipped, hash, now)) return s;
    overflowed_.fetch_add(1, std::memory_order_relaxed);
    TenantState* other = other_.load(std::memory_order_relaxed);
    if (!other) {
      other = create_locked(kOtherName, true, now);
      other_.store(other, std::memory_order_release);
    }
    return other;
  }
  if ((size_t(named_) + 1) * 4 > index_.size() * 3) grow_index_locked();
  uint32_t pos = find_slot_locked(clipped, hash);
  TenantState* state = create_locked(clipped, false, now);
  index_[pos] = state->index();
  ++named_;
  return state;
}

TenantState* TenantRegistry::find(std::string_view name) const {
  std::string_view clipped = clip_tenant_name(name);
  size_t hash = hash_name(clipped);
  std::lock_guard lock(mu_);
  if (index_.empty()) return nullptr;
  uint32_t v = index_[find_slot_locked(clipped, hash)];
  return v == kEmptySlot ? nullptr : at(v);
}

Status TenantRegistry::apply_limits(const std::vector<TenantRule>& rules,
                                    const TenantLimits& default_limits, Nanos now) {
  std::vector<std::string> patterns;
  std::vector<TenantLimits> limits;
  patterns.reserve(rules.size());
  limits.reserve(rules.size());
  for (const TenantRule& r : rules) {
    patterns.push_back(r.pattern);
    limits.push_back(r.limits);
  }
  auto matcher = RuleMatcher::build(patterns);
  if (!matcher) return matcher.error();

  std::lock_guard lock(mu_);
  matcher_ = std::move(*matcher);
  rule_limits_ = std::move(limits);
  rule_literal_.clear();
  for (const std::string& p : patterns) rule_literal_.push_back(is_literal_pattern(p));
  default_limits_ = default_limits;
  TenantState* other = other_.load(std::memory_order_relaxed);
  uint32_t n = size();
  for (uint32_t i = 0; i < n; ++i) {
    TenantState* s = at(i);
    int16_t rule = -1;
    const TenantLimits& l = s == other ? default_limits_ : limits_for_locked(s->name(), &rule);
    s->set_limits(l, now);
    s->set_rule(rule);
    if (s != other && protected_name_locked(s->name(), rule)) {
      set_protected_locked(i);
    }
  }
  return {};
}

size_t TenantRegistry::memory_bytes() const {
  std::lock_guard lock(mu_);
  size_t slabs = 0;
  for (uint32_t s = 0; s < slab_count_; ++s)
    if (slabs_[s].load(std::memory_order_relaxed)) ++slabs;
  return slabs * kSlabStates * sizeof(TenantState) + slabs * kSlabStates * sizeof(Entry) +
         slab_count_ * (sizeof(std::atomic<TenantState*>) + sizeof(std::unique_ptr<Entry[]>)) +
         index_.capacity() * sizeof(uint32_t);
}

}  // namespace helios::tenant
