#include "bpf/edge_maps.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "bpf/net_addr.h"
#include "helios/xdp_guard.skel.h"

namespace helios::bpf {

namespace {

bool key_less(const edge_cidr_key& a, const edge_cidr_key& b) {
  if (a.prefixlen != b.prefixlen) return a.prefixlen < b.prefixlen;
  return std::memcmp(a.addr, b.addr, sizeof(a.addr)) < 0;
}
struct CidrLess {
  bool operator()(const edge_cidr_key& a, const edge_cidr_key& b) const { return key_less(a, b); }
};
struct VipLess {
  bool operator()(const edge_vip_key& a, const edge_vip_key& b) const {
    return std::memcmp(&a, &b, sizeof(a)) < 0;
  }
};

std::string rule_name(const edge_tenant_rule& r) {
  return std::string(r.name, strnlen(r.name, sizeof(r.name)));
}

void add_counters(edge_tenant_counters& t, const edge_tenant_counters& v) {
  t.packets += v.packets;
  t.bytes += v.bytes;
  t.syn_seen += v.syn_seen;
  t.syn_passed += v.syn_passed;
  t.syn_dropped += v.syn_dropped;
  t.syn_dropped_global += v.syn_dropped_global;
}

}  // namespace

Result<EdgeMaps> EdgeMaps::from_fds(int config, int vips, int cidrs, int rules, int buckets,
                                    int global, int counters, int stats) {
  EdgeMaps m;
  auto c = MapView<uint32_t, edge_guard_config>::of_fd(config);
  if (!c) return c.error();
  m.config_ = *c;
  auto v = MapView<edge_vip_key, edge_vip_value>::of_fd(vips);
  if (!v) return v.error();
  m.vips_ = *v;
  auto ci = MapView<edge_cidr_key, edge_cidr_value>::of_fd(cidrs);
  if (!ci) return ci.error();
  m.cidrs_ = *ci;
  auto r = MapView<uint32_t, edge_tenant_rule>::of_fd(rules);
  if (!r) return r.error();
  m.rules_ = *r;
  auto b = MapView<uint32_t, edge_syn_bucket>::of_fd(buckets);
  if (!b) return b.error();
  m.buckets_ = *b;
  auto g = MapView<uint32_t, edge_syn_bucket>::of_fd(global);
  if (!g) return g.error();
  m.global_ = *g;
  auto ct = PerCpuMapView<uint32_t, edge_tenant_counters>::of_fd(counters);
  if (!ct) return ct.error();
  m.counters_ = *ct;
  auto s = PerCpuMapView<uint32_t, edge_guard_stats>::of_fd(stats);
  if (!s) return s.error();
  m.stats_ = *s;
  return m;
}

Result<EdgeMaps> EdgeMaps::of(const xdp_guard& skel) {
  const auto& mp = skel.maps;
  return from_fds(bpf_map__fd(mp.guard_config), bpf_map__fd(mp.vip_table),
                  bpf_map__fd(mp.tenant_cidrs), bpf_map__fd(mp.tenant_rules),
                  bpf_map__fd(mp.syn_buckets), bpf_map__fd(mp.global_bucket),
                  bpf_map__fd(mp.tenant_counters), bpf_map__fd(mp.guard_stats));
}

Result<EdgeMaps> EdgeMaps::open_pinned(const PinDir& dir) {
  const char* names[] = {HELIOS_MAP_GUARD_CONFIG,    HELIOS_MAP_VIP_TABLE,
                         HELIOS_MAP_TENANT_CIDRS,    HELIOS_MAP_TENANT_RULES,
                         HELIOS_MAP_SYN_BUCKETS,     HELIOS_MAP_GLOBAL_BUCKET,
                         HELIOS_MAP_TENANT_COUNTERS, HELIOS_MAP_GUARD_STATS};
  std::vector<UniqueFd> fds;
  for (const char* n : names) {
    auto fd = open_pinned_map(dir.file(n));
    if (!fd) {
      return Error{fd.error().code,
                   "edge: instance '" + dir.instance() +
                       "' is not attached (or its pins are incomplete): " + fd.error().message};
    }
    fds.push_back(std::move(*fd));
  }
  auto m = from_fds(fds[0].get(), fds[1].get(), fds[2].get(), fds[3].get(), fds[4].get(),
                    fds[5].get(), fds[6].get(), fds[7].get());
  if (!m) return m.error();
  m->owned_ = std::move(fds);
  return m;
}

Status EdgeMaps::apply(const EdgeSpec& spec) {
  if (auto s = validate(spec); !s) return s;
  uint32_t zero = 0;
  auto cur = config_->lookup(zero);
  if (!cur) return cur.error();
  edge_guard_config cfg = cur->value_or(edge_guard_config{});
  cfg.config_generation++;

  if (auto s = apply_vips(spec); !s) return s;
  if (auto s = apply_tenants(spec, cfg.config_generation); !s) return s;

  cfg.global_syn_rate_milli = rate_to_milli(spec.global_syn_rate);
  cfg.global_syn_burst_milli = burst_to_milli(spec.global_syn_burst, spec.global_syn_rate);
  cfg.flags = 0;
  if (cfg.global_syn_rate_milli > 0) cfg.flags |= EDGE_CFG_GLOBAL_LIMIT;
  if (spec.drop_fragments) cfg.flags |= EDGE_CFG_DROP_FRAGMENTS;
  return config_->update(zero, cfg);
}

Status EdgeMaps::apply_vips(const EdgeSpec& spec) {
  std::set<edge_vip_key, VipLess> want;
  std::map<edge_vip_key, edge_vip_value, VipLess> values;
  for (const auto& v : split_list(spec.vip)) {
    auto ep = parse_endpoint(v);
    if (!ep) return ep.error();
    values[vip_key(*ep)] = edge_vip_value{0};
    values[vip_address_key(ep->addr)] = edge_vip_value{EDGE_VIP_ADDRESS_ONLY};
  }
  for (const auto& [k, v] : values) {
    if (auto s = vips_->update(k, v); !s) return s;
  }
  auto have = vips_->keys();
  if (!have) return have.error();
  for (const auto& k : *have)
    if (!values.count(k))
      if (auto s = vips_->erase(k); !s) return s;
  return {};
}

Status EdgeMaps::apply_tenants(const EdgeSpec& spec, uint32_t generation) {
  // Current slots.
  std::map<std::string, uint32_t> id_of;
  std::vector<bool> used(HELIOS_EDGE_MAX_TENANTS, false);
  used[HELIOS_EDGE_UNMATCHED_TENANT] = true;
  for (uint32_t id = 1; id < HELIOS_EDGE_MAX_TENANTS; id++) {
    auto r = rules_->lookup(id);
    if (!r) return r.error();
    if (*r && ((*r)->flags & EDGE_RULE_IN_USE)) {
      id_of[rule_name(**r)] = id;
      used[id] = true;
    }
  }
  std::set<std::string> wanted;
  for (const auto& t : spec.tenants) wanted.insert(t.tenant);

  // Desired CIDR -> tenant id; new tenants take ids that are free now (never a slot whose old
  // tenant is being removed in this same update, so no packet is counted to the wrong name).
  std::map<std::string, uint32_t> new_ids;
  uint32_t next_free = 1;
  for (const auto& t : spec.tenants) {
    if (id_of.count(t.tenant)) continue;
    while (next_free < HELIOS_EDGE_MAX_TENANTS && used[next_free]) next_free++;
    if (next_free >= HELIOS_EDGE_MAX_TENANTS) {
      // Out of never-used slots: fall back to slots freed by removed tenants (cleared below,
      // before their new owner's CIDRs go in).
      break;
    }
    new_ids[t.tenant] = next_free;
    used[next_free] = true;
  }
  std::vector<uint32_t> freed;
  for (const auto& [name, id] : id_of)
    if (!wanted.count(name)) freed.push_back(id);
  size_t freed_i = 0;
  for (const auto& t : spec.tenants) {
    if (id_of.count(t.tenant) || new_ids.count(t.tenant)) continue;
    if (freed_i >= freed.size()) return Error::invalid("edge: no free tenant slot");
    new_ids[t.tenant] = freed[freed_i++];
  }
  auto id_for = [&](const std::string& name) {
    auto it = id_of.find(name);
    return it != id_of.end() ? it->second : new_ids.at(name);
  };

  std::map<edge_cidr_key, uint32_t, CidrLess> want;
  for (const auto& t : spec.tenants)
    for (const auto& c : t.cidrs) {
      auto k = parse_cidr(c);
      if (!k) return k.error();
      want[*k] = id_for(t.tenant);
    }

  // 1. Remove CIDRs that are gone or move to another tenant.
  auto have = cidrs_->keys();
  if (!have) return have.error();
  for (const auto& k : *have) {
    auto v = cidrs_->lookup(k);
    if (!v) return v.error();
    auto it = want.find(k);
    if (it == want.end() || !*v || (*v)->tenant_id != it->second)
      if (auto s = cidrs_->erase(k); !s) return s;
  }
  // 2. Clear removed tenants' slots.
  edge_tenant_counters zero_counters{};
  for (uint32_t id : freed) {
    if (auto s = rules_->update(id, edge_tenant_rule{}); !s) return s;
    if (auto s = buckets_->update(id, edge_syn_bucket{}); !s) return s;
    if (auto s = counters_->update_all(id, zero_counters); !s) return s;
  }
  // 3. Rules (fresh bucket and counters for new tenants), then 4. their CIDRs.
  for (const auto& t : spec.tenants) {
    uint32_t id = id_for(t.tenant);
    if (new_ids.count(t.tenant)) {
      if (auto s = buckets_->update(id, edge_syn_bucket{}); !s) return s;
      if (auto s = counters_->update_all(id, zero_counters); !s) return s;
    }
    edge_tenant_rule r{};
    std::memcpy(r.name, t.tenant.data(), std::min(t.tenant.size(), sizeof(r.name) - 1));
    r.flags = EDGE_RULE_IN_USE;
    r.syn_rate_milli = rate_to_milli(t.syn_rate);
    if (r.syn_rate_milli > 0) {
      r.flags |= EDGE_RULE_SYN_LIMIT;
      r.syn_burst_milli = burst_to_milli(t.syn_burst, t.syn_rate);
    }
    r.generation = generation;
    if (auto s = rules_->update(id, r); !s) return s;
  }
  for (const auto& [k, id] : want)
    if (auto s = cidrs_->update(k, edge_cidr_value{id}); !s) return s;
  return {};
}

Result<std::vector<std::pair<uint32_t, std::string>>> EdgeMaps::tenants() const {
  std::vector<std::pair<uint32_t, std::string>> out;
  for (uint32_t id = 1; id < HELIOS_EDGE_MAX_TENANTS; id++) {
    auto r = rules_->lookup(id);
    if (!r) return r.error();
    if (*r && ((*r)->flags & EDGE_RULE_IN_USE)) out.emplace_back(id, rule_name(**r));
  }
  return out;
}

Result<std::vector<EdgeTenantCounters>> EdgeMaps::counters() const {
  auto ts = tenants();
  if (!ts) return ts.error();
  std::vector<std::pair<uint32_t, std::string>> all{
      {HELIOS_EDGE_UNMATCHED_TENANT, kUnmatchedTenant}};
  all.insert(all.end(), ts->begin(), ts->end());
  std::vector<EdgeTenantCounters> out;
  for (const auto& [id, name] : all) {
    auto sum = counters_->sum(id, add_counters);
    if (!sum) return sum.error();
    EdgeTenantCounters c;
    c.tenant = name;
    c.tenant_id = id;
    c.packets = sum->packets;
    c.bytes = sum->bytes;
    c.syn_seen = sum->syn_seen;
    c.syn_passed = sum->syn_passed;
    c.syn_dropped = sum->syn_dropped;
    c.syn_dropped_global = sum->syn_dropped_global;
    out.push_back(std::move(c));
  }
  return out;
}

Result<edge_guard_stats> EdgeMaps::stats() const {
  return stats_->sum(0, [](edge_guard_stats& t, const edge_guard_stats& v) {
    t.packets += v.packets;
    t.vip_packets += v.vip_packets;
    t.non_vip += v.non_vip;
    t.short_headers += v.short_headers;
    t.malformed += v.malformed;
    t.fragments += v.fragments;
    t.fragments_dropped += v.fragments_dropped;
    t.ipv6_ext_unwalked += v.ipv6_ext_unwalked;
    t.syn_dropped += v.syn_dropped;
  });
}

Result<edge_guard_config> EdgeMaps::config() const {
  auto c = config_->lookup(0);
  if (!c) return c.error();
  return c->value_or(edge_guard_config{});
}

Status EdgeMaps::set_attach_info(uint32_t ifindex, edge_attach_mode mode) {
  auto c = config();
  if (!c) return c.error();
  c->ifindex = ifindex;
  c->attach_mode = mode;
  return config_->update(0, *c);
}

}  // namespace helios::bpf
