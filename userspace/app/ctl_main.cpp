// heliosctl: operate a running heliosproxy through its admin API, check configs, plan pool sizes
// and attach the XDP guard.
#include <cstdlib>

#include "app/ctl_commands.h"

int main(int argc, char** argv) {
  helios::ctl::CtlContext ctx;
  if (const char* url = std::getenv("HELIOS_ADMIN_URL")) ctx.admin_url = url;
  if (const char* tok = std::getenv("HELIOS_ADMIN_TOKEN")) ctx.token = tok;
  if (const char* f = std::getenv("HELIOS_ADMIN_TOKEN_FILE")) ctx.token_file = f;

  CLI::App app{"heliosctl: control HeliosProxy"};
  app.require_subcommand(1);
  app.add_option("--admin", ctx.admin_url, "admin API base URL (env HELIOS_ADMIN_URL)");
  app.add_option("--token", ctx.token, "admin API bearer token (env HELIOS_ADMIN_TOKEN)");
  app.add_option("--token-file", ctx.token_file,
                 "file holding the token, e.g. the one the proxy generated (env "
                 "HELIOS_ADMIN_TOKEN_FILE; default: admin_token next to $HELIOS_PROXY_CONFIG, "
                 "else /var/lib/helios/admin_token)");
  app.add_option("-o,--output", ctx.output, "output format")
      ->check(CLI::IsMember({"table", "json"}));

  // Subcommand groups register here as they are implemented.
  helios::ctl::register_check_command(app, ctx);
  helios::ctl::register_plan_command(app, ctx);
  helios::ctl::register_attach_commands(app, ctx);
  helios::ctl::register_admin_commands(app, ctx);
  helios::ctl::register_auth_setup_command(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : helios::ctl::kExitUsage;
  }
  return ctx.exit_code;
}
