// heliosctl auth-setup: prints the SQL that lets an ordinary role serve auth_query: a SECURITY
// DEFINER function, owned by the superuser who runs the SQL, that returns what the proxy
// checks at login (password, VALID UNTIL, LOGIN) for one role, granted to the auth user only.
#include <cctype>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "app/ctl_commands.h"
#include "common/clock.h"
#include "config/config.h"
#include "pool/pg_conn.h"

namespace helios::ctl {
namespace {

struct AuthSetupArgs {
  std::string config;
  std::string auth_user;
  std::string schema = "helios";
  bool include_superusers = false;
  bool install = false;  // run the SQL instead of printing it
  std::string host;      // default: [backend] host from --config
  uint16_t port = 0;     // default: [backend] port, else 5432
  std::string superuser = "postgres";
  std::string database;  // default: [auth] auth_database from --config
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

// The statements, in order (run inside one transaction).
std::vector<std::string> setup_statements(const AuthSetupArgs& args, const std::string& auth_user) {
  const std::string schema = quote_ident(args.schema);
  const std::string fn = schema + ".user_lookup";
  const std::string role = quote_ident(auth_user);
  return {
      "CREATE SCHEMA IF NOT EXISTS " + schema,
      "CREATE OR REPLACE FUNCTION " + fn +
          "(i_username text)\n"
          "  RETURNS TABLE (usename name, passwd text, valuntil timestamptz, canlogin boolean)\n"
          "  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS\n"
          "$$ SELECT a.rolname, a.rolpassword, a.rolvaliduntil, a.rolcanlogin\n"
          "   FROM pg_catalog.pg_authid a WHERE a.rolname = i_username" +
          (args.include_superusers ? std::string() : std::string(" AND NOT a.rolsuper")) + " $$",
      "REVOKE ALL ON FUNCTION " + fn + "(text) FROM PUBLIC",
      "GRANT USAGE ON SCHEMA " + schema + " TO " + role,
      "GRANT EXECUTE ON FUNCTION " + fn + "(text) TO " + role,
  };
}

// Runs the statements as a superuser: over TCP or a unix socket directory (a host starting
// with '/'), password from $PGPASSWORD when the server asks for one.
int install(const AuthSetupArgs& args, const std::vector<std::string>& statements,
            const std::string& database, const std::string& auth_query) {
  pool::LoginSecret secret;
  if (const char* pw = std::getenv("PGPASSWORD")) secret.password = pw;
  Nanos deadline = monotonic_now() + 10 * kNanosPerSec;
  auto session = pool::pg_login(pool::ServerAddress{args.host, args.port}, args.superuser, database,
                                {{"application_name", "heliosctl auth-setup"}}, secret, deadline);
  if (!session) {
    std::cerr << "auth-setup: login as \"" << args.superuser << "\" to " << args.host << ":"
              << args.port << "/" << database << ": " << session.error().message << "\n";
    return kExitFailed;
  }
  std::vector<std::string> all = {"BEGIN"};
  all.insert(all.end(), statements.begin(), statements.end());
  all.push_back("COMMIT");
  for (const std::string& sql : all) {
    if (auto r = pool::pg_query(*session, sql, {}, deadline); !r) {
      std::cerr << "auth-setup: " << sql.substr(0, sql.find('\n')) << ": " << r.error().message
                << "\n";
      return kExitFailed;
    }
  }
  std::cout << "installed in database \"" << database << "\"; now set in the proxy config and "
            << "reload:\n  [auth]\n  auth_query = '" << auth_query << "'\n";
  return kExitOk;
}

int run_auth_setup(const AuthSetupArgs& args) {
  std::string auth_user = args.auth_user;
  std::string database = args.database;
  AuthSetupArgs a = args;
  if (!args.config.empty()) {
    config::ParseOptions options;
    options.resolve_secrets = false;
    auto cfg = config::load_config_file(args.config, options);
    if (!cfg) {
      std::cerr << args.config << ": " << cfg.error().message << "\n";
      return kExitUsage;
    }
    if (auth_user.empty()) auth_user = cfg->auth.auth_user;
    if (database.empty()) database = cfg->auth.auth_database;
    if (a.host.empty()) a.host = cfg->backend.host;
    if (a.port == 0) a.port = cfg->backend.port;
  }
  if (auth_user.empty()) {
    std::cerr << "auth-setup: name the auth user with --auth-user or --config\n";
    return kExitUsage;
  }
  if (a.install && (database.empty() || a.host.empty())) {
    std::cerr << "auth-setup --install: give --dbname and --host, or --config\n";
    return kExitUsage;
  }
  if (a.port == 0) a.port = 5432;
  const std::string fn = quote_ident(args.schema) + ".user_lookup";
  const std::string auth_query = "SELECT * FROM " + fn + "($1)";
  const auto statements = setup_statements(args, auth_user);
  if (a.install) return install(a, statements, database, auth_query);
  std::cout << "-- HeliosProxy auth_query without a superuser: " << fn
            << "(text) returns one role's\n"
               "-- password, VALID UNTIL and LOGIN to the auth user "
            << quote_ident(auth_user)
            << " and to no one else.\n"
               "-- Run as a superuser in the [auth] auth_database, e.g.\n"
               "--   heliosctl auth-setup ... | psql -U postgres -d "
            << (database.empty() ? "AUTH_DATABASE" : database)
            << "\n"
               "-- (or heliosctl auth-setup ... --install), then set in the proxy config and "
               "reload:\n"
               "--   [auth]\n"
               "--   auth_query = '"
            << auth_query << "'\n"
            << (args.include_superusers
                    ? "-- Superusers are included (--include-superusers): the auth user can read "
                      "their secrets.\n"
                    : "-- Superusers are left out (they cannot log in through the proxy with it; "
                      "--include-superusers).\n")
            << "BEGIN;\n";
  for (const std::string& sql : statements) std::cout << sql << ";\n";
  std::cout << "COMMIT;\n";
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
  cmd->add_flag("--install", args->install,
                "run the SQL as --superuser (password from $PGPASSWORD) instead of printing it");
  cmd->add_option("--host", args->host,
                  "with --install: server host or unix socket directory (default: [backend] "
                  "host)");
  cmd->add_option("--port", args->port, "with --install: server port (default: [backend] port)");
  cmd->add_option("-U,--superuser", args->superuser, "with --install: a superuser (postgres)");
  cmd->add_option("-d,--dbname", args->database,
                  "the database auth_query runs in (default: [auth] auth_database)");
  cmd->callback([args, &ctx] { ctx.exit_code = run_auth_setup(*args); });
}

}  // namespace helios::ctl
