// heliosctl subcommands. Each ctl_<group>.cpp registers its subcommands on the CLI11 app;
// callbacks store their exit status in CtlContext::exit_code so scripts can rely on it.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace helios::ctl {

// Exit codes shared by every subcommand.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,       // the operation ran and the answer is "no" (over budget, not ready...)
  kExitUsage = 2,        // bad arguments or an invalid config file
  kExitUnreachable = 3,  // the admin API could not be reached
};

struct CtlContext {
  std::string admin_url = "http://127.0.0.1:9090";
  std::string token;             // bearer token for the admin API, or empty
  std::string token_file;        // where to read it when `token` is empty (see admin_token.h)
  std::string output = "table";  // "table" or "json"
  int exit_code = kExitOk;
};

void register_check_command(CLI::App& app, CtlContext& ctx);
void register_plan_command(CLI::App& app, CtlContext& ctx);
void register_attach_commands(CLI::App&, CtlContext&);
void register_admin_commands(CLI::App& app, CtlContext& ctx);
void register_auth_setup_command(CLI::App& app, CtlContext& ctx);

}  // namespace helios::ctl
