// The connection budget of seed 003: every pool's max must fit the database ceiling minus the
// reserved connections. With several [backend] hosts the budget is per host (each host has
// its own pools, sized alike).
#include "config/config.h"

namespace helios::config {

ConnectionBudget compute_connection_budget(const Config& config) {
  ConnectionBudget b;
  b.db_max = config.backend.db_max_connections;
  b.reserved = config.backend.reserved_connections;
  for (const TierConfig& t : config.tiers) {
    BudgetLine line;
    line.pool_size = t.pool_size;
    if (t.mode == TierMode::kDedicated) {
      line.what = "tier " + t.name + " (dedicated)";
      line.pools = t.expected_tenants;
    } else {
      line.what = "tier " + t.name + " (shared)";
      line.pools = 1;
    }
    line.connections = line.pool_size * line.pools;
    b.needed += line.connections;
    b.lines.push_back(std::move(line));
  }
  BudgetLine def;
  def.what = "default pool";
  def.pool_size = config.backend.max_connections;
  def.pools = 1;
  def.connections = def.pool_size;
  b.needed += def.connections;
  b.lines.push_back(std::move(def));
  // Several [backend] hosts: every host gets pools of these sizes (the budget above is per
  // host) and one health-check connection.
  if (config.backend.hosts.size() > 1) {
    BudgetLine hc;
    hc.what = "health check (per host; " + std::to_string(config.backend.hosts.size()) +
              " hosts, each budgeted alike)";
    hc.pool_size = 1;
    hc.pools = 1;
    hc.connections = 1;
    b.needed += hc.connections;
    b.lines.push_back(std::move(hc));
  }
  return b;
}

std::string ConnectionBudget::summary() const {
  const std::string need = "pools need " + std::to_string(needed) + " connections";
  if (!checked()) return need + " (db_max_connections not set: no budget check)";
  const std::string allows = reserved > 0
                                 ? std::to_string(db_max) + " - " + std::to_string(reserved) +
                                       " reserved = " + std::to_string(available())
                                 : std::to_string(db_max);
  if (needed > available()) {
    return need + " but the database allows " + allows + ": over by " +
           std::to_string(needed - available());
  }
  if (reserved > 0) {
    return "pools need " + std::to_string(needed) + " of " + std::to_string(available()) +
           " connections (" + std::to_string(db_max) + " - " + std::to_string(reserved) +
           " reserved)";
  }
  return "pools need " + std::to_string(needed) + " of " + std::to_string(db_max) + " connections";
}

std::string ConnectionBudget::breakdown() const {
  std::string out;
  for (const BudgetLine& l : lines) {
    if (!out.empty()) out += ", ";
    out += l.what + ": ";
    if (l.pools == 1) {
      out += std::to_string(l.connections);
    } else {
      out += std::to_string(l.pool_size) + " x " + std::to_string(l.pools) + " = " +
             std::to_string(l.connections);
    }
  }
  return out;
}

}  // namespace helios::config
