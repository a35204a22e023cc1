// All pools of the process, created on first use: one per (database, user) for the default
// pool, per tier group for shared tiers, per tenant for dedicated tiers. Pools live until exit,
// so raw Pool* handed to workers stay valid.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "control/config.h"
#include "pool/backend_table.h"
#include "pool/connector.h"
#include "pool/pool.h"

namespace helios::server {

// Pool settings for a pool of `tier` ("" = the default pool) under `cfg`.
pool::PoolSettings pool_settings_for(const control::Config& cfg, const std::string& tier);

class PoolManager {
 public:
  PoolManager(pool::BackendTable& table, pool::Connector& connector)
      : table_(table), connector_(connector) {}

  pool::Pool* get(const pool::PoolKey& key, const control::Config& cfg);
  // Hot reload: every pool takes its new settings.
  void apply(const control::Config& cfg);
  std::vector<pool::Pool*> all() const;

 private:
  pool::BackendTable& table_;
  pool::Connector& connector_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<pool::Pool>> pools_;
};

}  // namespace helios::server
