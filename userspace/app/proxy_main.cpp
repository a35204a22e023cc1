// heliosproxy: the PostgreSQL connection pooler daemon.
//   heliosproxy -c /etc/helios/proxy.toml
//   heliosproxy -c proxy.toml --check      validate the config and exit
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "common/log.h"
#include "config/config.h"
#include "ops/ops_server.h"
#include "proxy/proxy.h"

int main(int argc, char** argv) {
  CLI::App app{"heliosproxy: PostgreSQL connection pooler"};
  std::string config_path;
  bool check_only = false;
  if (const char* env = std::getenv("HELIOS_PROXY_CONFIG")) config_path = env;
  app.add_option("-c,--config", config_path, "config file (env HELIOS_PROXY_CONFIG)");
  app.add_flag("--check", check_only, "validate the config and exit");
  app.set_version_flag("--version", HELIOS_VERSION);
  CLI11_PARSE(app, argc, argv);
  if (config_path.empty()) {
    std::fprintf(stderr, "heliosproxy: no config file: use -c FILE or HELIOS_PROXY_CONFIG\n");
    return 2;
  }
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  auto cfg = helios::config::load_config_file(config_path);
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.error().message.c_str());
    return 2;
  }
  if (auto s = helios::config::check_serving(*cfg, nullptr); !s) {
    std::fprintf(stderr, "%s\n", s.error().message.c_str());
    return 2;
  }
  for (const auto& w : cfg->warnings) helios::log::warn("{}", w);
  if (check_only) {
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }
  helios::proxy::Proxy server(std::move(*cfg), config_path);
  if (auto s = server.start(); !s) {
    helios::log::error("cannot start: {}", s.error().message);
    return 1;
  }
  auto ops = helios::ops::OpsServer::start(server, &server.context().metrics);
  if (!ops) {
    helios::log::error("cannot start the admin API: {}", ops.error().message);
    return 1;
  }
  int rc = server.run();
  (*ops)->stop();
  return rc;
}
