#include "fleet/fleet_agent.h"

#include <chrono>

#include "common/clock.h"
#include "common/log.h"
#include "fleet/lease_script.h"
#include "fleet/peer_info.h"
#include "fleet/slice.h"

namespace helios::fleet {
namespace {

uint32_t as_cap(double share) {
  return share <= 0                                         ? 0
         : share >= double(tenant::TenantState::kNoCap - 1) ? tenant::TenantState::kNoCap - 1
                                                            : uint32_t(share);
}

std::string fmt_num(double v) {  // exact enough for Lua's tonumber
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

FleetAgent::FleetAgent(const config::FleetConfig& cfg, tenant::TenantRegistry& tenants,
                       tenant::FleetCaps& caps, std::string info)
    : cfg_(cfg), tenants_(tenants), caps_(caps), info_(std::move(info)), redis_(cfg) {}

FleetAgent::~FleetAgent() {
  stop();
}

void FleetAgent::start() {
  cancels_.start();
  thread_ = std::thread([this] { run(); });
}

void FleetAgent::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  cancels_.stop();
}

void FleetAgent::kick() {
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

void FleetAgent::add_waiting(uint32_t tenant_index, int delta) {
  std::lock_guard lock(mu_);
  int64_t v = int64_t(waiting_[tenant_index]) + delta;
  if (v <= 0)
    waiting_.erase(tenant_index);
  else
    waiting_[tenant_index] = uint32_t(v);
}

uint32_t FleetAgent::waiting(uint32_t tenant_index) const {
  std::lock_guard lock(mu_);
  auto it = waiting_.find(tenant_index);
  return it == waiting_.end() ? 0 : it->second;
}

void FleetAgent::init_state(tenant::TenantState& t) {
  tenant::TenantLimits l = t.limits();
  if (l.max_connections == 0 && l.max_active == 0 && !(l.max_qps > 0)) return;
  // Connected: nothing until the next renewal (kicked now; a login waits admission_wait), since
  // the other instances may hold the whole limit. Degraded: the static share.
  const bool static_share_now = degraded();
  uint32_t live = std::max<uint32_t>(1, live_.load(std::memory_order_relaxed));
  auto share = [&](double limit, bool whole) {
    return static_share_now ? static_share(limit, live, whole) : 0.0;
  };
  if (l.max_connections > 0)
    caps_.set_connections(t.index(), as_cap(share(l.max_connections, true)));
  if (l.max_active > 0) caps_.set_active(t.index(), as_cap(share(l.max_active, true)));
  if (l.max_qps > 0) t.set_qps_share(share(l.max_qps, false), monotonic_now());
  if (!static_share_now) kick();
}

void FleetAgent::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    kicked_ = false;
    lock.unlock();
    renew_once();
    lock.lock();
    cv_.wait_for(lock, std::chrono::nanoseconds(cfg_.renew_interval),
                 [this] { return stop_ || kicked_; });
  }
}

std::vector<FleetAgent::Item> FleetAgent::collect() {
  std::vector<Item> items;
  Nanos now = monotonic_now();
  std::unordered_map<uint32_t, uint32_t> waits;
  {
    std::lock_guard lock(mu_);
    waits = waiting_;
  }
  tenants_.for_each([&](tenant::TenantState& t) {
    tenant::TenantLimits l = t.limits();
    std::string name(t.name());
    if (l.max_connections > 0) {
      double used = t.client_connections();
      auto w = waits.find(t.index());
      items.push_back({t.index(), name, 'c', double(l.max_connections), used,
                       used + (w == waits.end() ? 0 : w->second)});
    }
    if (l.max_active > 0) {
      double used = t.active_leases();
      items.push_back({t.index(), name, 'a', double(l.max_active), used, used + t.queued()});
    }
    if (l.max_qps > 0) {
      // Demand of a rate: what ran in the last second, and more when it ran at its share
      // (queries were probably held back), so a busy instance asks for a bigger part.
      double rate = t.current_qps(now);
      double share = t.qps_rate();
      double want = rate >= 0.9 * share ? share * 1.25 + 1 : rate * 1.1 + 1;
      items.push_back({t.index(), name, 'q', double(l.max_qps), rate, want});
    }
  });
  if (collect_external_)
    for (const ExternalLimit& e : collect_external_())
      if (e.limit > 0) items.push_back({UINT32_MAX, e.key, 'p', e.limit, e.used, e.want});
  return items;
}

void FleetAgent::apply(const std::vector<Item>& items, const std::vector<double>& shares) {
  Nanos now = monotonic_now();
  std::vector<ShareView> views;
  for (size_t i = 0; i < items.size() && i < shares.size(); ++i) {
    const Item& it = items[i];
    if (it.kind == 'p') {
      if (apply_external_) apply_external_(it.tenant, shares[i]);
      views.push_back({it.tenant, it.kind, it.limit, shares[i], it.used, it.want});
      continue;
    }
    tenant::TenantState* t = tenants_.at(it.tenant_index);
    if (!t || t->name() != it.tenant) continue;  // rebuilt for another name meanwhile
    double s = shares[i];
    switch (it.kind) {
      case 'c':
        caps_.set_connections(it.tenant_index, as_cap(s));
        break;
      case 'a': {
        uint32_t before = caps_.active(it.tenant_index);
        caps_.set_active(it.tenant_index, as_cap(s));
        if ((before == tenant::TenantState::kNoCap || as_cap(s) > before) && active_grew_)
          active_grew_(t);
        break;
      }
      default:
        t->set_qps_share(s, now);
    }
    views.push_back({it.tenant, it.kind, it.limit, s, it.used, it.want});
  }
  std::lock_guard lock(mu_);
  shares_ = std::move(views);
}

void FleetAgent::renew_once() {
  std::vector<Item> items = collect();
  std::vector<std::string> argv{"EVAL",
                                std::string(lease_script()),
                                "0",
                                cfg_.key_prefix,
                                cfg_.instance_id,
                                std::to_string(cfg_.instance_ttl / kNanosPerMilli),
                                member_info(),
                                std::to_string(peer()),
                                std::to_string(kMaxPeerNumber),
                                std::to_string(items.size())};
  for (const Item& it : items) {
    argv.push_back(std::string(1, it.kind) + ":" + it.tenant);  // p: a pool key
    argv.push_back(fmt_num(it.limit));
    argv.push_back(fmt_num(it.used));
    argv.push_back(fmt_num(it.want));
    argv.push_back(it.kind == 'q' ? "0" : "1");
  }
  Nanos started = monotonic_now();
  auto reply = redis_.command(argv);
  bool ok = reply && reply->kind == RedisValue::Kind::kArray && reply->array.size() == 4 &&
            reply->array[1].array.size() == items.size();
  if (!ok) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    if (!degraded_.exchange(true)) {
      log::warn(
          "fleet: Redis {}:{} cannot be reached ({}); using static shares (limit / {} "
          "instances last seen) until it is back",
          cfg_.redis_host, cfg_.redis_port,
          reply ? std::string("unexpected reply") : reply.error().message,
          live_.load(std::memory_order_relaxed));
    }
    uint32_t live = live_.load(std::memory_order_relaxed);
    std::vector<double> shares;
    for (const Item& it : items) shares.push_back(static_share(it.limit, live, it.kind != 'q'));
    apply(items, shares);
    if (renewed_) renewed_();
    return;
  }
  std::vector<double> shares;
  for (const auto& v : reply->array[1].array) shares.push_back(std::strtod(v.str.c_str(), nullptr));
  std::vector<std::string> ids;
  for (const auto& v : reply->array[0].array) ids.push_back(v.str);
  live_.store(std::max<uint32_t>(1, uint32_t(ids.size())), std::memory_order_relaxed);
  apply_peers(reply->array[2], reply->array[0], reply->array[3]);
  apply(items, shares);
  renewals_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(mu_);
    instances_ = std::move(ids);
    last_renewal_ms_ = double(monotonic_now() - started) / 1e6;
  }
  if (degraded_.exchange(false))
    log::info("fleet: Redis {}:{} is back; shared enforcement again", cfg_.redis_host,
              cfg_.redis_port);
  if (renewed_) renewed_();
}

std::string FleetAgent::member_info() {
  if (cancel_address_.empty()) {
    auto addr = resolve_cancel_address(cfg_.cancel_address);
    if (addr) {
      std::lock_guard lock(mu_);  // view() reads it
      cancel_address_ = *addr;
      log::info("fleet: other instances forward cancels for this one's sessions to {}",
                cancel_address_);
    } else if (!cancel_address_failed_) {
      cancel_address_failed_ = true;
      log::warn(
          "fleet: cancel address {}: {}; cancels sent to other instances are not "
          "forwarded here until it resolves",
          cfg_.cancel_address.to_string(), addr.error().message);
    }
  }
  return cancel_address_.empty() ? info_ : info_ + " cancel=" + cancel_address_;
}

void FleetAgent::apply_peers(const RedisValue& peer, const RedisValue& ids,
                             const RedisValue& infos) {
  uint32_t mine = uint32_t(std::strtoul(peer.str.c_str(), nullptr, 10));
  uint32_t before = peer_.exchange(mine, std::memory_order_relaxed);
  if (mine != before) {
    if (mine == 0)
      log::warn(
          "fleet: no free peer number (all {} taken): cancels for this instance's new "
          "sessions sent to other instances are not forwarded",
          kMaxPeerNumber);
    else
      log::info("fleet: this instance is peer {} in its cancel keys", mine);
  }
  std::vector<PeerAddress> peers;
  for (size_t i = 0; i < ids.array.size() && i < infos.array.size(); ++i) {
    if (ids.array[i].str == cfg_.instance_id) continue;
    auto p = parse_member_info(infos.array[i].str);
    if (!p || p->peer == mine) continue;
    if (p->address == cancel_address_ && !shared_address_warned_) {
      shared_address_warned_ = true;
      log::warn(
          "fleet: instance {} publishes this instance's cancel address {} (one "
          "SO_REUSEPORT port?): cancels cannot be forwarded between them; give each "
          "instance its own [fleet] cancel_address",
          ids.array[i].str, cancel_address_);
    }
    p->instance_id = ids.array[i].str;
    peers.push_back(std::move(*p));
  }
  cancels_.set_peers(std::move(peers));
}

FleetView FleetAgent::view() const {
  FleetView v;
  v.instance_id = cfg_.instance_id;
  v.redis =
      cfg_.redis_host + ":" + std::to_string(cfg_.redis_port) + "/" + std::to_string(cfg_.redis_db);
  v.degraded = degraded();
  v.live_instances = live_instances();
  v.renewals = renewals_.load(std::memory_order_relaxed);
  v.failures = failures_.load(std::memory_order_relaxed);
  v.peer = peer();
  v.peers = cancels_.peers();
  v.cancels = cancels_.counters();
  std::lock_guard lock(mu_);
  v.instances = instances_;
  v.shares = shares_;
  v.last_renewal_ms = last_renewal_ms_;
  v.cancel_address = cancel_address_;
  return v;
}

}  // namespace helios::fleet
