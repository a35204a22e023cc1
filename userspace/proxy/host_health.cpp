// Starts the health checker when [backend] lists more than one host: roles, lag and bans go to
// the host table that routing (backend_route.cpp) reads. A banned host's idle backends are
// closed at once. With one host nothing runs and every lease goes there, as before.
#include "common/log.h"
#include "proxy/proxy.h"
#include "proxy/server_tls.h"

namespace helios::proxy {

Status Proxy::start_health_checker(const config::Config& cfg) {
  if (cfg.backend.hosts.size() < 2) return {};
  std::vector<pool::ServerAddress> addrs;
  for (const auto& h : cfg.backend.hosts) addrs.push_back(pool::ServerAddress{h.host, h.port});
  pool::HostLimits limits;
  limits.ban_time = cfg.backend.ban_time;
  limits.max_lag = cfg.backend.max_replica_lag;
  limits.max_lag_bytes = cfg.backend.max_replica_lag_bytes;
  ctx_.hosts = std::make_unique<pool::HostTable>(std::move(addrs), limits);
  pool::HealthCheckSettings s;
  s.user = cfg.backend.user;
  s.database = cfg.backend.database.empty() ? "postgres" : cfg.backend.database;
  s.secret.password = cfg.backend.password;
  s.interval = cfg.backend.health_check_interval;
  s.connect_timeout = cfg.backend.connection_timeout;
  auto tls = server_tls_from(cfg);
  if (!tls) return tls.error();
  s.tls = std::move(*tls);
  auto messenger = std::shared_ptr<pool::Messenger>(ctx_.make_messenger());
  ctx_.health = std::make_unique<pool::HealthChecker>(
      *ctx_.hosts, std::move(s), [this, messenger](size_t host) {
        ctx_.pools->close_idle_on_host(uint16_t(host), *messenger);
      });
  log::info("{} backend hosts: roles and lag checked every {} ms", cfg.backend.hosts.size(),
            cfg.backend.health_check_interval / kNanosPerMilli);
  return {};
}

}  // namespace helios::proxy
