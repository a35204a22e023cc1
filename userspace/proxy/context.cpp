#include "proxy/context.h"

#include "pg/sqlstate.h"
#include "proxy/client.h"
#include "tenant/glob.h"

namespace helios::proxy {
namespace {

tenant::TenantLimits convert(const config::TenantLimits& l, const config::Config& cfg) {
  tenant::TenantLimits t;
  t.max_connections = uint32_t(l.max_connections);
  t.max_active = uint32_t(l.max_active);
  t.max_qps = double(l.max_qps);
  t.qps_burst = double(l.qps_burst);
  t.qps_max_wait = l.qps_max_wait;
  t.max_transaction_duration = l.max_transaction_duration;
  t.weight = uint32_t(l.weight > 0 ? l.weight : 1);
  t.pool_mode_override = l.pool_mode == cfg.proxy.mode ? int8_t(-1) : int8_t(l.pool_mode);
  t.data_path_override = l.data_path == cfg.proxy.data_path ? int8_t(-1) : int8_t(l.data_path);
  t.tier = -1;
  for (size_t i = 0; i < cfg.tiers.size(); ++i)
    if (cfg.tiers[i].name == l.tier) t.tier = int16_t(i);
  return t;
}

}  // namespace

std::vector<tenant::TenantRule> tenant_rules_from(const config::Config& cfg) {
  std::vector<tenant::TenantRule> rules;
  for (const auto& r : cfg.tenant_quotas.limits)
    rules.push_back({r.tenant_pattern, convert(r.limits, cfg)});
  return rules;
}

tenant::TenantLimits default_tenant_limits_from(const config::Config& cfg) {
  return convert(cfg.tenant_quotas.default_limits, cfg);
}

namespace {

// The allowed_users of the rule that gives `tenant` its limits, or nullptr if any user may claim
// it.
const std::vector<std::string>* allowed_users_for(const std::string& tenant,
                                                  const config::Config& cfg) {
  const auto& q = cfg.tenant_quotas;
  bool any = !q.default_limits.allowed_users.empty();
  for (const auto& r : q.limits) any = any || !r.limits.allowed_users.empty();
  if (!any) return nullptr;  // the common case: no rule binds tenants to users
  // The rule that gives the tenant its limits (most specific pattern), as the registry picks it.
  std::vector<std::string> patterns;
  for (const auto& r : q.limits) patterns.push_back(r.tenant_pattern);
  int i = tenant::RuleMatcher(patterns).match(tenant);
  const auto& users =
      i >= 0 ? q.limits[size_t(i)].limits.allowed_users : q.default_limits.allowed_users;
  return users.empty() ? nullptr : &users;
}

}  // namespace

Status SharedContext::admit_client(Client* c, const std::string& name, const std::string& user,
                                   const config::Config& cfg) {
  if (quotas_enabled.load(std::memory_order_relaxed)) {
    if (const auto* allowed = allowed_users_for(name, cfg)) {
      bool ok = false;
      for (const auto& glob : *allowed) ok = ok || tenant::glob_match(glob, user);
      if (!ok)
        return Error{EACCES, "user \"" + user + "\" may not claim tenant \"" + name +
                                 "\" (allowed_users of its [tenant_quotas] rule)"};
    }
  }
  tenant::TenantState* t = tenants.acquire(name, monotonic_now());
  c->tenant = t;  // held until the client's slot is freed (Worker::maybe_free)
  if (!quotas_enabled.load(std::memory_order_relaxed)) {
    c->tenant_counted = false;
    return {};
  }
  const uint32_t cap = connection_cap(t);
  const bool fleet_share = fleet != nullptr && cap != tenant::TenantState::kNoCap;
  if (!t->try_admit_connection(/*count_refusal=*/!fleet_share, cap)) {
    return Error{fleet_share ? EAGAIN : EUSERS,
                 "too many connections for tenant \"" + std::string(t->name()) +
                     "\": its max_connections is " + std::to_string(t->max_connections())};
  }
  c->tenant_counted = true;
  return {};
}

void SharedContext::on_client_closed(Client* c) {
  if (c->tenant && c->tenant_counted) c->tenant->release_connection();
  c->tenant_counted = false;
}

std::string SharedContext::pool_group_for(const Client* c, const config::Config& cfg) const {
  if (!c->tenant || !quotas_enabled.load(std::memory_order_relaxed)) return "";
  int16_t tier = c->tenant->tier();
  if (tier < 0 || size_t(tier) >= cfg.tiers.size()) return "";
  const auto& t = cfg.tiers[size_t(tier)];
  if (t.mode == config::TierMode::kDedicated)
    return "tier:" + t.name + ":" + std::string(c->tenant->name());
  return "tier:" + t.name;
}

void SharedContext::fill_waiter(Client* c) const {
  c->waiter.node.tenant = c->tenant ? c->tenant->index() : 0;
  c->waiter.weight = c->tenant ? c->tenant->weight() : 1;
}

void SharedContext::on_lease_start(Client* c, Nanos waited) {
  c->pool->counters().acquire_latency.observe(waited);
  if (c->tenant) c->tenant->record_transaction();
}

void SharedContext::on_lease_end(Client* c) {
  (void)c;
}

}  // namespace helios::proxy
