// heliosctl auth-setup: prints the SQL that lets an ordinary role serve auth_query: a SECURITY
// DEFINER function, owned by the superuser who runs the SQL, that returns what the proxy
// checks at login (password, VALID UNTIL, LOGIN) for one role, granted to the auth user only.
#include <cctype>
#include <iostream>

#include "app/ctl_commands.h"
#include "control/config.h"

namespace helios::ctl {
namespace {

struct AuthSetupArgs {
  std::string config;
  std::string auth_user;
  std::string schema = "helios";
  bool include_superusers = false;
};

// PostgreSQL's quote_ident: plain lower-case names stay as they are.
std::string quote_ident(const std::string& s) {
  bool plain = !s.empty() && !std::isdigit(static_cast<unsigned char>(s[0]));
  for (char ch : s)
    if (!(std::islower(static_cast<unsigned char>(ch)) ||
          std::isdigit(static_cast<unsigned char>(ch)) || ch == '_'))
      plain = false;
  if (plain) return s;
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

int run_auth_setup(const AuthSetupArgs& args) {
  std::string auth_user = args.auth_user;
  std::string database = "AUTH_DATABASE";
  if (!args.config.empty()) {
    control::ParseOptions options;
    options.resolve_secrets = false;
    auto cfg = control::load_config_file(args.config, options);
    if (!cfg) {
      std::cerr << args.config << ": " << cfg.error().message << "\n";
      return kExitUsage;
    }
    if (auth_user.empty()) auth_user = cfg->auth.auth_user;
    database = cfg->auth.auth_database;
  }
  if (auth_user.empty()) {
    std::cerr << "auth-setup: name the auth user with --auth-user or --config\n";
    return kExitUsage;
  }
  const std::string fn = quote_ident(args.schema) + ".user_lookup";
  const std::string role = quote_ident(auth_user);
  std::cout << "-- HeliosProxy auth_query without a superuser: " << fn
            << "(text) returns one role's\n"
               "-- password, VALID UNTIL and LOGIN to the auth user "
            << role
            << " and to no one else.\n"
               "-- Run as a superuser in the [auth] auth_database, e.g.\n"
               "--   heliosctl auth-setup ... | psql -U postgres -d "
            << database
            << "\n"
               "-- then set in the proxy config and reload:\n"
               "--   [auth]\n"
               "--   auth_query = 'SELECT * FROM "
            << fn << "($1)'\n"
            << (args.include_superusers
                    ? "-- Superusers are included (--include-superusers): the auth user can read "
                      "their secrets.\n"
                    : "-- Superusers are left out (they cannot log in through the proxy with it; "
                      "--include-superusers).\n")
            << "BEGIN;\n"
               "CREATE SCHEMA IF NOT EXISTS "
            << quote_ident(args.schema) << ";\nCREATE OR REPLACE FUNCTION " << fn
            << "(i_username text)\n"
               "  RETURNS TABLE (usename name, passwd text, valuntil timestamptz, canlogin "
               "boolean)\n"
               "  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS\n"
               "$$ SELECT a.rolname, a.rolpassword, a.rolvaliduntil, a.rolcanlogin\n"
               "   FROM pg_catalog.pg_authid a WHERE a.rolname = i_username"
            << (args.include_superusers ? "" : " AND NOT a.rolsuper") << " $$;\n"
            << "REVOKE ALL ON FUNCTION " << fn << "(text) FROM PUBLIC;\n"
            << "GRANT USAGE ON SCHEMA " << quote_ident(args.schema) << " TO " << role << ";\n"
            << "GRANT EXECUTE ON FUNCTION " << fn << "(text) TO " << role << ";\n"
            << "COMMIT;\n";
  return kExitOk;
}

}  // namespace

void register_auth_setup_command(CLI::App& app, CtlContext& ctx) {
  auto args = std::make_shared<AuthSetupArgs>();
  CLI::App* cmd = app.add_subcommand(
      "auth-setup",
      "print the SQL (for psql, run as a superuser) that installs a SECURITY DEFINER lookup "
      "function so an ordinary auth user can serve auth_query");
  cmd->add_option("-c,--config", args->config,
                  "proxy config: takes [auth] auth_user and auth_database from it")
      ->check(CLI::ExistingFile);
  cmd->add_option("--auth-user", args->auth_user,
                  "the role the proxy runs auth_query as (default: from --config)");
  cmd->add_option("--schema", args->schema, "schema of the function (default helios)");
  cmd->add_flag("--include-superusers", args->include_superusers,
                "let the function return superusers' secrets too");
  cmd->callback([args, &ctx] { ctx.exit_code = run_auth_setup(*args); });
}

}  // namespace helios::ctl
