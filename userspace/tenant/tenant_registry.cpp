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

}  // namespace

TenantRegistry::TenantRegistry(uint32_t max_tenants, TenantLimits default_limits)
    : max_tenants_(std::max<uint32_t>(1, max_tenants)),
      // +1: room for the overflow state after max_tenants named ones.
      slab_count_((max_tenants_ + 1 + kSlabStates - 1) / kSlabStates),
      slabs_(new std::atomic<TenantState*>[slab_count_]),
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
  }
  int16_t rule = -1;
  const TenantLimits& limits = overflow ? default_limits_ : limits_for_locked(clipped, &rule);
  TenantState* state = new (slab + index % kSlabStates) TenantState(index, clipped, limits, now);
  state->set_rule(rule);
  size_.store(index + 1, std::memory_order_release);  // publishes the constructed state
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
  std::string_view clipped = clip_tenant_name(name);
  size_t hash = hash_name(clipped);
  std::lock_guard lock(mu_);
  if (!index_.empty()) {
    uint32_t v = index_[find_slot_locked(clipped, hash)];
    if (v != kEmptySlot) return at(v);
  }
  if (named_ >= max_tenants_) {
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
  default_limits_ = default_limits;
  TenantState* other = other_.load(std::memory_order_relaxed);
  uint32_t n = size();
  for (uint32_t i = 0; i < n; ++i) {
    TenantState* s = at(i);
    int16_t rule = -1;
    const TenantLimits& l = s == other ? default_limits_ : limits_for_locked(s->name(), &rule);
    s->set_limits(l, now);
    s->set_rule(rule);
  }
  return {};
}

size_t TenantRegistry::memory_bytes() const {
  std::lock_guard lock(mu_);
  size_t slabs = 0;
  for (uint32_t s = 0; s < slab_count_; ++s)
    if (slabs_[s].load(std::memory_order_relaxed)) ++slabs;
  return slabs * kSlabStates * sizeof(TenantState) +
         slab_count_ * sizeof(std::atomic<TenantState*>) + index_.capacity() * sizeof(uint32_t);
}

}  // namespace helios::tenant
