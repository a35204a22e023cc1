// heliosctl plan: size tier pools from peak QPS and service time (seed 003) and check them
// against the database's connection budget. The work is in helios::tenant::run_plan.
#include <iostream>
#include <memory>

#include "app/ctl_commands.h"
#include "tenant/planner.h"

namespace helios::ctl {
namespace {

static_assert(tenant::kPlanFits == kExitOk);
static_assert(tenant::kPlanOverBudget == kExitFailed);
static_assert(tenant::kPlanBadInput == kExitUsage);

struct PlanArgs {
  std::string file;
  std::vector<std::string> tiers;
  uint32_t db_max = 0, reserved = 0, default_pool = 0, instances = 1;
  bool fleet = false;
  CLI::Option* db_max_opt = nullptr;
  CLI::Option* instances_opt = nullptr;
  CLI::Option* fleet_opt = nullptr;
  uint32_t hosts = 1;
  CLI::Option* hosts_opt = nullptr;
  CLI::Option* reserved_opt = nullptr;
  CLI::Option* default_pool_opt = nullptr;
};

}  // namespace

void register_plan_command(CLI::App& app, CtlContext& ctx) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand(
      "plan",
      "Size tier pools: L = peak_qps x mean_service_s, pool = ceil(L x burst); check the sum "
      "against the database's max_connections. Exit 0 fits, 1 over budget, 2 bad input.");
  cmd->add_option("-f,--file", args->file,
                  "plan TOML: [database] max_connections, reserved, default_pool and "
                  "[tiers.<name>] tables");
  cmd->add_option("--tier", args->tiers,
                  "NAME:MODE:PEAK_QPS:MEAN_SERVICE_S:BURST:TENANTS[:WEIGHT[:POOL_MODE]], "
                  "MODE dedicated|shared, MEAN_SERVICE_S in seconds (repeatable)");
  args->db_max_opt =
      cmd->add_option("--db-max-connections", args->db_max, "the database's max_connections");
  args->reserved_opt = cmd->add_option(
      "--reserved", args->reserved, "connections kept free (superuser, replication, migrations)");
  args->default_pool_opt = cmd->add_option(
      "--default-pool", args->default_pool,
      "size of the proxy's default pool ([backend] max_connections), counted in the budget");
  args->instances_opt =
      cmd->add_option("--instances", args->instances,
                      "proxy instances in front of the database: without --fleet each opens "
                      "its own pools, so they count this many times")
          ->check(CLI::Range(1u, 100000u));
  args->fleet_opt = cmd->add_flag("--fleet", args->fleet,
                                  "the instances share pool maxima through [fleet] (Redis): "
                                  "the pools count once");
  args->hosts_opt = cmd->add_option("--hosts", args->hosts,
                                    "[backend] hosts (a primary and replicas): the budget is per "
                                    "host, each host gets the pools and one health-check "
                                    "connection per instance")
                        ->check(CLI::Range(1u, 16u));
  cmd->add_option("-o,--output", ctx.output, "output format")
      ->check(CLI::IsMember({"table", "json"}));
  cmd->callback([args, &ctx] {
    tenant::PlanRequest req;
    req.file = args->file;
    req.tier_specs = args->tiers;
    if (args->db_max_opt->count()) req.db_max_connections = args->db_max;
    if (args->reserved_opt->count()) req.reserved = args->reserved;
    if (args->default_pool_opt->count()) req.default_pool = args->default_pool;
    if (args->instances_opt->count()) req.instances = args->instances;
    if (args->fleet_opt->count()) req.fleet = args->fleet;
    if (args->hosts_opt->count()) req.hosts = args->hosts;
    req.json = ctx.output == "json";
    ctx.exit_code = tenant::run_plan(req, std::cout, std::cerr);
  });
}

}  // namespace helios::ctl
