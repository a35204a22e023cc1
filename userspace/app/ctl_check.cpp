// heliosctl check CONFIG: load and validate a proxy config exactly as the proxy would.
// Prints "CONFIG: ok" plus any warnings (exit 0), or every error found (exit 2).
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
  const config::ConnectionBudget budget = config::compute_connection_budget(*config);
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
                         {"pools", lines}}}};
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << args.path << ": ok\n";
  for (const std::string& w : config->warnings) std::cout << "warning: " << w << "\n";
  if (budget.checked() || !config->tiers.empty()) {
    std::cout << "budget: " << budget.summary() << " (" << budget.breakdown() << ")\n";
  }
  return kExitOk;
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
  cmd->callback([args, &ctx] { ctx.exit_code = run_check(*args, ctx); });
}

}  // namespace helios::ctl
