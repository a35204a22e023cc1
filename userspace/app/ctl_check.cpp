// heliosctl check CONFIG: load and validate a proxy config exactly as the proxy would.
// Prints "CONFIG: ok" plus any warnings (exit 0), or every error found (exit 2).
#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/ctl_commands.h"
#include "config/config.h"

namespace helios::ctl {
namespace {

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

struct CheckArgs {
  std::string path;
  bool no_secrets = false;
  // Instances that run this config (--instances); 0 = not given (one).
  int64_t instances = 0;
};

int run_check(const CheckArgs& args, const CtlContext& ctx) {
  config::ParseOptions options;
  options.resolve_secrets = !args.no_secrets;
  Result<config::Config> config = config::load_config_file(args.path, options);
  // The proxy refuses to start with a file that has no settings: so does the check.
  if (config) {
    if (Status s = config::check_serving(*config, nullptr); !s) config = s.error();
  }
  const bool json = ctx.output == "json";
  if (!config) {
    const std::vector<std::string> errors = split_lines(config.error().message);
    if (json) {
      nlohmann::json out{{"config", args.path},
                         {"ok", false},
                         {"errors", errors},
                         {"warnings", nlohmann::json::array()}};
      std::cout << out.dump(2) << "\n";
    } else {
      for (const std::string& e : errors) std::cerr << e << "\n";
      std::cerr << args.path << ": invalid (" << errors.size()
                << (errors.size() == 1 ? " error" : " errors") << ")\n";
    }
    return kExitUsage;
  }
  config::ConnectionBudget budget = config::compute_connection_budget(*config);
  // Without [fleet] every instance opens its own pools: the database sees the pools of every
  // instance. With [fleet] each pool's maximum is fleet-wide (docs/fleet.md), so the budget
  // holds for any number of instances.
  const int64_t instances = config->fleet.enabled ? 1 : std::max<int64_t>(1, args.instances);
  if (instances > 1) {
    for (config::BudgetLine& l : budget.lines) {
      l.pools *= instances;
      l.connections *= instances;
      l.what += " x " + std::to_string(instances) + " instances";
    }
    budget.needed *= instances;
  }
  const bool over = instances > 1 && !budget.fits();
  if (json) {
    nlohmann::json lines = nlohmann::json::array();
    for (const config::BudgetLine& l : budget.lines) {
      lines.push_back({{"what", l.what},
                       {"pool_size", l.pool_size},
                       {"pools", l.pools},
                       {"connections", l.connections}});
    }
    nlohmann::json out{{"config", args.path},
                       {"ok", true},
                       {"errors", nlohmann::json::array()},
                       {"warnings", config->warnings},
                       {"budget",
                        {{"needed", budget.needed},
                         {"db_max_connections", budget.db_max},
                         {"reserved_connections", budget.reserved},
                         {"checked", budget.checked()},
                         {"instances", instances},
                         {"fits", budget.fits()},
                         {"pools", lines}}}};
    std::cout << out.dump(2) << "\n";
    return over ? kExitFailed : kExitOk;
  }
  std::cout << args.path << ": ok\n";
  for (const std::string& w : config->warnings) std::cout << "warning: " << w << "\n";
  if (budget.checked() || !config->tiers.empty() || instances > 1) {
    std::cout << "budget: " << budget.summary() << " (" << budget.breakdown() << ")\n";
  }
  if (config->fleet.enabled)
    std::cout << "note: [fleet] is set: pool maxima are shared by every instance, so this budget "
                 "holds for any number of instances\n";
  return over ? kExitFailed : kExitOk;
}

}  // namespace

void register_check_command(CLI::App& app, CtlContext& ctx) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* cmd = app.add_subcommand(
      "check",
      "Validate a proxy config file: prints \"CONFIG: ok\" and warnings (exit 0), or "
      "every error as file:line (exit 2)");
  cmd->add_option("CONFIG", args->path, "path to helios-proxy.toml")->required();
  cmd->add_flag("--no-secrets", args->no_secrets,
                "do not read password/token files and accept unset ${VARS}: check a config on a "
                "machine that does not hold its secrets");
  cmd->add_option("--instances", args->instances,
                  "proxy instances that will run this config without [fleet]: the database "
                  "budget counts every instance's pools (exit 1 when they do not fit)")
      ->check(CLI::Range(int64_t(1), int64_t(10000)));
  cmd->callback([args, &ctx] { ctx.exit_code = run_check(*args, ctx); });
}

}  // namespace helios::ctl
