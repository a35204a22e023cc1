// All pools of the process, created on first use: one per (database, user) for the default
// pool, per tier group for shared tiers, per tenant for dedicated tiers. Pools live until exit,
// so raw Pool* handed to workers stay valid.
#pragma once

#include <functional>

#include <memory>
#include <mutex>
#include <vector>

#include "config/config.h"
#include "pool/backend_table.h"
#include "pool/connector.h"
#include "pool/pool.h"

namespace helios::pool {

// Pool settings for a pool of `tier` ("" = the default pool) under `cfg`.
PoolSettings pool_settings_for(const config::Config& cfg, const std::string& tier);

class PoolManager {
 public:
  PoolManager(BackendTable& table, Connector& connector) : table_(table), connector_(connector) {}

  Pool* get(const PoolKey& key, const config::Config& cfg);
  // The pool like `home` (same database, user, group) on another host, created on first use
  // with home's login secret.
  Pool* on_host(Pool* home, uint16_t host, const config::Config& cfg);
  // Closes the idle backends of every pool on `host` (the host was banned).
  void close_idle_on_host(uint16_t host, Messenger& m);
  // Hot reload: every pool takes its new settings.
  void apply(const config::Config& cfg);
  std::vector<Pool*> all() const;
  // Called (under the manager's lock) for every pool made, before anybody uses it: [fleet]
  // starts it at its fleet share. Set once, before the workers start.
  void set_on_create(std::function<void(Pool&)> fn) { on_create_ = std::move(fn); }

 private:
  BackendTable& table_;
  Connector& connector_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Pool>> pools_;
  std::function<void(Pool&)> on_create_;
};

}  // namespace helios::pool
