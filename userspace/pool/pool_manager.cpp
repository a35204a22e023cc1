#include "pool/pool_manager.h"

namespace helios::pool {

PoolSettings pool_settings_for(const config::Config& cfg, const std::string& group) {
  PoolSettings s;
  s.min_connections = cfg.backend.min_connections;
  s.max_connections = cfg.backend.max_connections;
  s.idle_timeout = cfg.connection_pool.idle_timeout;
  s.max_lifetime = cfg.backend.max_lifetime;
  s.lifetime_jitter = cfg.backend.lifetime_jitter;
  s.connection_timeout = cfg.backend.connection_timeout;
  s.server_check_delay = cfg.backend.server_check_delay;
  s.mode = cfg.proxy.mode;
  s.reset_query = cfg.connection_pool.server_reset_query;
  // Tier pools: "tier:<name>" (shared) or "tier:<name>:<tenant>" (dedicated).
  if (group.starts_with("tier:")) {
    std::string_view rest = std::string_view(group).substr(5);
    std::string name(rest.substr(0, rest.find(':')));
    if (const auto* t = cfg.find_tier(name)) {
      s.max_connections = t->pool_size;
      s.min_connections = t->min_connections;
      s.mode = t->pool_mode;
    }
  }
  return s;
}

Pool* PoolManager::get(const PoolKey& key, const config::Config& cfg) {
  std::lock_guard lock(mu_);
  for (auto& p : pools_)
    if (p->key() == key) return p.get();
  pools_.push_back(std::make_unique<Pool>(key, pool_settings_for(cfg, key.group), table_,
                                          connector_, cfg.metrics.histogram_buckets));
  if (on_create_) on_create_(*pools_.back());
  return pools_.back().get();
}

Pool* PoolManager::on_host(Pool* home, uint16_t host, const config::Config& cfg) {
  if (home->key().host == host) return home;
  if (Pool* p = home->sibling(host)) return p;
  PoolKey key = home->key();
  key.host = host;
  Pool* p = get(key, cfg);
  if (!p->has_login_secret() && home->has_login_secret()) p->set_login_secret(home->login_secret());
  home->set_sibling(host, p);
  return p;
}

void PoolManager::close_idle_on_host(uint16_t host, Messenger& m) {
  for (Pool* p : all())
    if (p->key().host == host) p->close_all_idle(m);
}

void PoolManager::apply(const config::Config& cfg) {
  std::lock_guard lock(mu_);
  for (auto& p : pools_) p->apply_settings(pool_settings_for(cfg, p->key().group));
}

std::vector<Pool*> PoolManager::all() const {
  std::lock_guard lock(mu_);
  std::vector<Pool*> out;
  for (auto& p : pools_) out.push_back(p.get());
  return out;
}

}  // namespace helios::pool
