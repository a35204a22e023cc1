// Secrets: ${ENV} substitution, *_file secrets (first line), relative paths, and that secret
// values never appear in messages.
#include <doctest/doctest.h>

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "config/config.h"
#include "config/config_reader.h"

using namespace helios;
using namespace helios::config;

namespace {

GetEnv env(std::map<std::string, std::string> vars) {
  return [vars](std::string_view n) -> std::optional<std::string> {
    auto it = vars.find(std::string(n));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

ParseOptions options(std::map<std::string, std::string> vars,
                     std::map<std::string, std::string> files = {}) {
  ParseOptions o;
  o.source_name = "proxy.toml";
  o.getenv = env(std::move(vars));
  o.read_file = [files](const std::string& p) -> Result<std::string> {
    auto it = files.find(p);
    if (it == files.end()) return Error{ENOENT, "No such file or directory"};
    return it->second;
  };
  o.os_user = [] { return std::string("proxyuser"); };
  return o;
}

bool mentions(const Config& c, const std::string& needle) {
  for (const std::string& w : c.warnings) {
    if (w.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("${VAR} substitution, $${ escape and errors") {
  const GetEnv e = env({{"A", "alpha"}, {"EMPTY", ""}, {"B_2", "beta"}});
  CHECK(*substitute_env("x${A}y", e) == "xalphay");
  CHECK(*substitute_env("${A}${B_2}", e) == "alphabeta");
  CHECK(*substitute_env("[${EMPTY}]", e) == "[]");
  CHECK(*substitute_env("$${A}", e) == "${A}");
  CHECK(*substitute_env("cost $5 and $", e) == "cost $5 and $");
  CHECK(*substitute_env("no refs", e) == "no refs");
  CHECK(substitute_env("${MISSING}", e).error().message ==
        "${MISSING} is not set in the environment");
  CHECK(substitute_env("${A", e).error().message.find("unterminated") == 0);
  CHECK_FALSE(substitute_env("${1A}", e).ok());
  CHECK_FALSE(substitute_env("${}", e).ok());
  std::vector<std::string> unset;
  CHECK(*substitute_env("a${MISSING}b", e, true, &unset) == "ab");
  CHECK(unset == std::vector<std::string>{"MISSING"});
}

TEST_CASE("passwords come from ${ENV} inside any string") {
  Result<Config> c = parse_config(
      "[backend]\nuser = \"${DB_USER}\"\npassword = \"${DB_PASS}\"\nhost = \"db-${REGION}\"\n",
      options({{"DB_USER", "helios"}, {"DB_PASS", "pa$$w0rd"}, {"REGION", "eu"}}));
  REQUIRE(c.ok());
  CHECK(c->backend.user == "helios");
  CHECK(c->backend.password == "pa$$w0rd");
  CHECK(c->backend.host == "db-eu");
  CHECK(c->auth.auth_password == "pa$$w0rd");  // auth_password defaults to [backend] password
  CHECK(c->warnings.empty());
}

TEST_CASE("a password written in the file is accepted with a warning that does not repeat it") {
  Result<Config> c = parse_config("[backend]\nuser = \"u\"\npassword = \"hunter2\"\n", options({}));
  REQUIRE(c.ok());
  CHECK(c->backend.password == "hunter2");
  REQUIRE(c->warnings.size() == 1);
  CHECK(c->warnings[0] ==
        "proxy.toml:3: [backend] password is written in the config file; prefer password_file "
        "or \"${ENV_VAR}\"");
}

TEST_CASE("password_file: first line, newline stripped, relative to the config's directory") {
  ParseOptions o = options({}, {{"/etc/helios/pw", "hunter2\r\nsecond line\n"},
                                {"/etc/helios/token", "tok\n"},
                                {"/abs/auth", "authpw"}});
  o.base_dir = "/etc/helios";
  Result<Config> c = parse_config(
      "[backend]\nuser = \"u\"\npassword_file = \"pw\"\n"
      "[admin]\ntoken_file = \"token\"\n"
      "[auth]\nauth_user = \"a\"\nauth_password_file = \"/abs/auth\"\n",
      o);
  REQUIRE(c.ok());
  CHECK(c->backend.password == "hunter2");
  CHECK(c->admin.token == "tok");
  CHECK(c->auth.auth_password == "authpw");
  CHECK(c->auth.auth_user == "a");
}

TEST_CASE("secret file errors name the file and never the secret") {
  ParseOptions o = options({{"SECRET", "topsecret"}}, {{"/empty", "\n"}});
  std::string message =
      parse_config("[backend]\nuser = \"u\"\npassword_file = \"/nope/pw\"\n", o).error().message;
  CHECK(message ==
        "proxy.toml:3: [backend] password_file: cannot read \"/nope/pw\": No such file or "
        "directory");
  message = parse_config("[backend]\npassword_file = \"/empty\"\n", o).error().message;
  CHECK(message ==
        "proxy.toml:2: [backend] password_file: \"/empty\" is empty (the secret is its first "
        "line)");
  message = parse_config(
                "[backend]\npassword = \"${SECRET}\"\npassword_file = \"/empty\"\n"
                "port = \"${SECRET}\"\n",
                o)
                .error()
                .message;
  CHECK(message.find("proxy.toml:3: [backend] password_file: set either password (line 2) or "
                     "password_file, not both") == 0);
  CHECK(message.find("topsecret") == std::string::npos);
}

TEST_CASE("password_file on disk, relative to the config file") {
  char dir_template[] = "/tmp/helios-config-test-XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template;
  {
    std::ofstream(dir + "/db_password") << "from-disk\n";
    std::ofstream(dir + "/proxy.toml") << "[backend]\nuser = \"u\"\npassword_file = "
                                          "\"db_password\"\n";
  }
  Result<Config> c = load_config_file(dir + "/proxy.toml");
  REQUIRE(c.ok());
  CHECK(c->backend.password == "from-disk");
  CHECK(c->source == dir + "/proxy.toml");
  std::remove((dir + "/db_password").c_str());
  c = load_config_file(dir + "/proxy.toml");
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message == dir + "/proxy.toml:3: [backend] password_file: cannot read \"" + dir +
                                 "/db_password\": No such file or directory");
  std::remove((dir + "/proxy.toml").c_str());
  rmdir(dir.c_str());
  c = load_config_file(dir + "/proxy.toml");
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message == dir + "/proxy.toml: cannot read config: No such file or directory");
}

TEST_CASE("checking without secrets: unset variables and secret files become warnings") {
  ParseOptions o = options({});
  o.resolve_secrets = false;
  Result<Config> c = parse_config(
      "[backend]\nuser = \"u\"\npassword = \"${DB_PASS}\"\n[admin]\ntoken_file = \"/x\"\n", o);
  REQUIRE(c.ok());
  CHECK(c->backend.password.empty());
  CHECK(mentions(*c, "proxy.toml:3: [backend] password: ${DB_PASS} is not set; checked as \"\""));
  CHECK(mentions(*c, "proxy.toml:5: [admin] token_file \"/x\" was not read"));
}

TEST_CASE("auth defaults point at [backend]") {
  Result<Config> c =
      parse_config("[backend]\nuser = \"helios\"\ndatabase = \"app\"\n", options({}));
  REQUIRE(c.ok());
  CHECK(c->auth.auth_user == "helios");
  CHECK(c->auth.auth_database == "app");
  c = parse_config("[backend]\nuser = \"helios\"\n", options({}));
  REQUIRE(c.ok());
  CHECK(c->auth.auth_database == "postgres");
}
