// [fleet]: the fleet agent's wiring (docs/fleet.md). The agent lives in fleet/ and knows only the
// tenant registry; what it must tell the workers (a max_active gate may open, a waiting login
// may be admitted) goes through the hooks set here.
#include "common/log.h"
#include "proxy/messenger.h"
#include "proxy/proxy.h"

namespace helios::proxy {

Status Proxy::start_fleet(const config::Config& cfg) {
  if (!cfg.fleet.enabled) return {};
  if (!cfg.tenant_quotas.enabled)
    log::warn("[fleet] is set but [tenant_quotas] is off: there is nothing to share");
  std::string info = "listen=" + cfg.proxy.listen_address.to_string() +
                     " admin=" + cfg.proxy.admin_listen_address.to_string();
  ctx_.fleet_caps = std::make_unique<tenant::FleetCaps>(ctx_.tenants.max_tenants() + 1);
  ctx_.gates.set_fleet_caps(ctx_.fleet_caps.get());
  // Cancel keys carry this instance's peer number; others forward cancels to cancel_address
  // (default: the listen address, its host made reachable: fleet/peer_info.h).
  ctx_.cancel_keys = CancelKeyLayout(true);
  static_assert(CancelKeyLayout::kMaxPeer == fleet::kMaxPeerNumber);
  config::FleetConfig fleet_cfg = cfg.fleet;
  if (fleet_cfg.cancel_address.host.empty() && fleet_cfg.cancel_address.port == 0)
    fleet_cfg.cancel_address = cfg.proxy.listen_address;
  fleet_ = std::make_unique<fleet::FleetAgent>(fleet_cfg, ctx_.tenants, *ctx_.fleet_caps,
                                               std::move(info));
  fleet::FleetAgent* agent = fleet_.get();
  // A cancel_address on another port (instances sharing one SO_REUSEPORT port): the forwarder's
  // thread listens there, and what arrives is this instance's to look up, never forwarded. On
  // the listen port it only names the listener (an address other instances can reach).
  if (fleet_cfg.cancel_address.port != cfg.proxy.listen_address.port) {
    auto messenger = std::make_shared<std::unique_ptr<pool::Messenger>>();
    auto deliver = [this, messenger](int32_t pid, int32_t key) {
      CancelKeyLayout::Decoded d = ctx_.cancel_keys.decode(pid);
      if (!d.ours || d.worker >= ctx_.workers.size()) return;
      if (!*messenger) *messenger = ctx_.make_messenger();  // made and used on that thread only
      uint32_t slot = d.slot, k = uint32_t(key);
      ctx_.workers[d.worker]->post([slot, k](Worker& w) { w.on_cancel(slot, k); }, **messenger);
    };
    if (auto s = agent->cancels().listen(fleet_cfg.cancel_address, std::move(deliver)); !s)
      return s;
  }
  ctx_.tenants.set_on_create([agent](tenant::TenantState& t) { agent->init_state(t); });
  ctx_.tenants.for_each([agent](tenant::TenantState& t) { agent->init_state(t); });
  agent->on_active_grew([this](tenant::TenantState* t) {
    while (auto w = ctx_.gates.admit_waiting(t)) {
      tenant::GateWaiter g = *w;
      ctx_.workers[g.worker]->post([g, t](Worker& wk) { wk.on_gate_open(g.slot, g.gen, t); },
                                   fleet_messenger());
    }
  });
  agent->on_renewed([this, agent] {
    ctx_.fleet_admission.drain(
        *ctx_.fleet_caps, monotonic_now(), [&](const FleetAdmission::Waiter& w, bool ok) {
          agent->add_waiting(w.tenant->index(), -1);
          ctx_.workers[w.worker]->post(
              [w, ok](Worker& wk) { wk.on_fleet_admission(w.slot, w.gen, w.tenant, ok); },
              fleet_messenger());
        });
  });
  // Pools: each pool's max_connections is a fleet-wide limit too, so the backends of every
  // instance stay within the pools' maxima (and, as `heliosctl check` verifies, within
  // db_max_connections - reserved_connections). A new pool starts at 0 until a renewal.
  ctx_.pools->set_on_create([agent](pool::Pool& p) {
    if (agent->degraded()) return;  // the static share follows at the next (failed) renewal
    pool::PoolSettings s = p.settings();
    s.max_connections = 0;
    p.apply_settings(s);
    agent->kick();
  });
  agent->on_external(
      [this] {
        std::vector<fleet::ExternalLimit> out;
        auto cfg = config();
        for (pool::Pool* p : ctx_.pools->all()) {
          pool::PoolSnapshot s = p->snapshot();
          double used = double(s.total + s.connecting);
          out.push_back({p->key().to_string(),
                         double(pool::pool_settings_for(*cfg, p->key().group).max_connections),
                         used, used + double(s.waiting)});
        }
        return out;
      },
      [this](const std::string& key, double slice) {
        auto cfg = config();
        for (pool::Pool* p : ctx_.pools->all()) {
          if (p->key().to_string() != key) continue;
          pool::PoolSettings s = pool::pool_settings_for(*cfg, p->key().group);
          s.max_connections = std::min<int64_t>(s.max_connections, int64_t(slice));
          if (p->settings() != s) p->apply_settings(s);
        }
      });
  ctx_.fleet = agent;
  log::info("fleet: instance {} shares quotas through redis://{}:{}/{} (renewal every {} ms)",
            cfg.fleet.instance_id, cfg.fleet.redis_host, cfg.fleet.redis_port, cfg.fleet.redis_db,
            cfg.fleet.renew_interval / kNanosPerMilli);
  return {};
}

pool::Messenger& Proxy::fleet_messenger() {
  if (!fleet_messenger_) fleet_messenger_ = ctx_.make_messenger();
  return *fleet_messenger_;
}

void Proxy::stop_fleet() {
  if (fleet_) fleet_->stop();
}

}  // namespace helios::proxy
