// Tier pool planner (seed 003, "Sizing Connection Pools Per Tenant Tier"), behind
// `heliosctl plan`.
//
// Per tier: L = peak_qps x mean_service_s (Little's law: connections busy at steady state),
// pool_size = max(1, ceil(L x burst_factor)) (headroom for bursts), pools = expected tenants for
// a dedicated tier (one pool each) or 1 for a shared tier, connections = pool_size x pools.
// Budget: sum of connections + default pool (the pools of one instance), times the proxy
// instances unless they share their pool maxima through [fleet], + reserved must be <= the
// database's max_connections. Products are rounded to 1e-9 before ceil() so 120 x 0.025 x 2.0
// is 6, not 7.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace helios::tenant {

enum class TierMode { kDedicated, kShared };
const char* tier_mode_name(TierMode m);  // "dedicated" / "shared"

struct TierInput {
  std::string name;  // [A-Za-z0-9_-], up to 64 bytes (a bare TOML key, as the config requires)
  TierMode mode = TierMode::kShared;
  double peak_qps = 0;        // queries/s at the busiest minute (aggregate for a shared tier)
  double mean_service_s = 0;  // mean time a query holds a connection, seconds
  double burst_factor = 1;    // >= 1
  uint32_t tenants = 1;       // dedicated: tenant pools to budget; shared: tenants in the group
  uint32_t weight = 1;        // fair-queue weight written to the snippet
  std::string pool_mode;      // "" (inherit), session, transaction or statement
  std::string origin;         // where it came from, for messages ("plan.toml:12", "--tier ...")
};

struct PlanInput {
  std::vector<TierInput> tiers;
  uint32_t db_max_connections = 0;  // PostgreSQL's max_connections
  uint32_t reserved = 0;            // kept free: superuser, replication, migrations, monitoring
  uint32_t default_pool = 0;        // the proxy's default pool ([backend] max_connections), if any
  uint32_t instances = 1;           // proxy instances in front of the database
  bool fleet = false;  // the instances share pool maxima through [fleet]: the pools count once
  uint32_t hosts = 1;  // [backend] hosts (a primary and replicas): each gets the pools, and one
                       // health-check connection per instance; max_connections is per host
};

struct TierPlan {
  TierInput input;
  double concurrency = 0;  // L = lambda x W
  uint32_t pool_size = 0;
  uint32_t pools = 0;
  uint64_t connections = 0;
};

struct Plan {
  std::vector<TierPlan> tiers;
  uint32_t db_max_connections = 0;
  uint32_t reserved = 0;
  uint32_t default_pool = 0;
  uint32_t instances = 1;
  bool fleet = false;
  uint32_t hosts = 1;
  uint64_t per_instance = 0;   // tiers + default pool: what one instance's pools may open
  uint64_t health_checks = 0;  // with several hosts: one connection per instance on each host
  uint64_t total = 0;          // per_instance x (fleet ? 1 : instances) + health_checks + reserved,
                               // on each host
  bool fits = false;
  uint64_t over_by = 0;  // total - db_max_connections when it does not fit
  uint64_t spare = 0;    // db_max_connections - total when it fits
};

// max(1, ceil(peak_qps * mean_service_s * burst_factor)), immune to floating-point noise.
uint32_t plan_pool_size(double peak_qps, double mean_service_s, double burst_factor);

// A problem with one tier's values: which field, and what is wrong.
struct TierProblem {
  std::string field;
  std::string message;
};
std::optional<TierProblem> check_tier(const TierInput& tier);

// Validates (EINVAL with the origin of the bad tier) and computes the plan.
Result<Plan> make_plan(const PlanInput& input);

// "name:mode:peak_qps:mean_service_s:burst[:x]:tenants[:weight[:pool_mode]]".
Result<TierInput> parse_tier_spec(std::string_view spec);
// A plan file: [database] max_connections, reserved, default_pool, hosts; [proxy] instances,
// fleet;
// [tiers.<name>] mode,
// peak_qps, mean_service_s, burst_factor, expected_tenants (or tenants), weight, pool_mode.
// Errors read "path:line: message". Tiers keep their order in the file.
Result<PlanInput> load_plan_file(const std::string& path);
Result<PlanInput> parse_plan_toml(std::string_view text, const std::string& source_name);

// Seed 003's table, a Total row "204 / 200" and the verdict line.
std::string format_plan_table(const Plan& plan);
// The verdict alone: "fits: ..." or "over budget by N: ..." (with a way to fit).
std::string plan_verdict(const Plan& plan);
// [tiers.<name>] sections for helios-proxy.toml.
std::string format_plan_toml(const Plan& plan);
// The whole plan as a JSON document (includes the TOML snippet).
std::string format_plan_json(const Plan& plan);

// `heliosctl plan` without the CLI parsing: inputs from a file and/or flags (flags win), output
// to `out`, errors to `err`. Returns the exit code; the values match helios::ctl::ExitCode.
constexpr int kPlanFits = 0;
constexpr int kPlanOverBudget = 1;
constexpr int kPlanBadInput = 2;
struct PlanRequest {
  std::string file;                     // plan TOML, or empty
  std::vector<std::string> tier_specs;  // --tier values, appended after the file's tiers
  std::optional<uint32_t> db_max_connections, reserved, default_pool, instances, hosts;
  std::optional<bool> fleet;
  bool json = false;
};
int run_plan(const PlanRequest& request, std::ostream& out, std::ostream& err);

}  // namespace helios::tenant
