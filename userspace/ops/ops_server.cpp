#include "ops/ops_server.h"

#include <cerrno>

#include "common/log.h"
#include "ops/admin_token.h"
#include "proxy/proxy.h"

namespace helios::ops {
namespace {

constexpr Nanos kRetryEvery = 250 * kNanosPerMilli;
constexpr Nanos kRejectionWindow = 3600 * kNanosPerSec;
constexpr Nanos kRejectionStep = 30 * kNanosPerSec;

}  // namespace

OpsServer::OpsServer(proxy::Proxy& server, proxy::MetricsCounters* counters)
    : server_(server),
      own_counters_(counters ? nullptr : std::make_unique<proxy::MetricsCounters>()),
      counters_(counters ? counters : own_counters_.get()),
      started_(monotonic_now()),
      admin_(*this),
      metrics_([this] { return snapshot(); }),
      rejections_window_(started_, kRejectionWindow, kRejectionStep) {}

Result<std::unique_ptr<OpsServer>> OpsServer::start(proxy::Proxy& server,
                                                    proxy::MetricsCounters* counters) {
  std::unique_ptr<OpsServer> ops(new OpsServer(server, counters));
  auto cfg = server.config();
  ops->metrics_enabled_ = cfg->metrics.enabled;
  ops->metrics_address_ =
      config::HostPort{cfg->metrics.prometheus_address, cfg->metrics.prometheus_port}.to_string();
  ops->token_path_ = generated_token_path(server.config_path(), config::process_environment());
  if (cfg->admin.token.empty()) {
    if (Status s = ops->prepare_generated_token(); !s) return s.error();
  }

  if (Status s = ops->try_bind_admin(); !s) {
    if (s.error().code != EADDRINUSE) return s.error();
    log::warn("{}; retrying in the background (a draining predecessor may still hold it)",
              s.error().message);
  }
  if (ops->metrics_enabled_) {
    if (Status s = ops->try_bind_metrics(); !s)
      log::warn("{}; retrying in the background", s.error().message);
  }
  {
    std::lock_guard lock(ops->window_mu_);
    ops->rejections_window_.observe(monotonic_now(), ops->total_rejections());
  }
  ops->upkeep_ = std::thread([p = ops.get()] { p->upkeep_loop(); });
  return ops;
}

OpsServer::~OpsServer() {
  stop();
}

void OpsServer::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (upkeep_.joinable()) upkeep_.join();
  admin_.stop();
  if (admin_thread_.joinable()) admin_thread_.join();
  metrics_.stop();
  if (metrics_thread_.joinable()) metrics_thread_.join();
  metrics_bound_.store(false);
}

Status OpsServer::prepare_generated_token() {
  auto token = ensure_token_file(token_path_);
  if (!token)
    return Error{token.error().code,
                 token.error().message +
                     " (the admin API's reload and drain need a token: set [admin] token or "
                     "token_file, or point " +
                     kAdminTokenFileEnv + " at a writable path)"};
  std::lock_guard lock(token_mu_);
  generated_token_ = std::move(*token);
  log::info("admin API token (for POST reload and drain) is in {} (mode 0600)", token_path_);
  return {};
}

Status OpsServer::try_bind_admin() {
  auto cfg = server_.config();
  const config::HostPort& a = cfg->proxy.admin_listen_address;
  if (Status s = admin_.bind(a.host, a.port); !s) return s;
  admin_bound_.store(true);
  admin_thread_ = std::thread([this] { admin_.serve(); });
  log::info("admin API on http://{}", a.to_string());
  if (cfg->admin.token.empty() && a.host != "127.0.0.1" && a.host != "::1" && a.host != "localhost")
    log::warn("admin API on {} has no [admin] token: anyone who reaches it may read the stats",
              a.to_string());
  return {};
}

Status OpsServer::try_bind_metrics() {
  auto cfg = server_.config();
  if (Status s = metrics_.bind(cfg->metrics.prometheus_address, cfg->metrics.prometheus_port); !s)
    return s;
  metrics_bound_.store(true);
  metrics_thread_ = std::thread([this] { metrics_.serve(); });
  log::info("Prometheus metrics on http://{}/metrics", metrics_address_);
  return {};
}

void OpsServer::upkeep_loop() {
  Nanos next_retry = monotonic_now() + kRetryEvery;
  Nanos next_sample = monotonic_now() + kRejectionStep;
  bool admin_warned = true, metrics_warned = true;  // start() logged the first failure
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::nanoseconds(kRetryEvery));
    if (stopping_) break;
    lock.unlock();
    Nanos now = monotonic_now();
    if (now >= next_retry) {
      next_retry = now + kRetryEvery;
      if (!admin_bound_.load()) {
        Status s = try_bind_admin();
        if (!s && !admin_warned) log::warn("{}", s.error().message);
        admin_warned = true;
      }
      if (metrics_enabled_ && !metrics_bound_.load()) {
        Status s = try_bind_metrics();
        if (!s && !metrics_warned) log::warn("{}", s.error().message);
        metrics_warned = true;
      }
    }
    if (now >= next_sample) {
      next_sample = now + kRejectionStep;
      uint64_t total = total_rejections();
      std::lock_guard wl(window_mu_);
      rejections_window_.observe(now, total);
    }
    lock.lock();
  }
}

uint64_t OpsServer::total_rejections() const {
  uint64_t n = 0;
  server_.context().tenants.for_each([&](const tenant::TenantState& t) {
    for (size_t r = 0; r < size_t(tenant::Rejection::kCount); ++r)
      n += t.rejections(tenant::Rejection(r));
  });
  return n;
}

ProxySnapshot OpsServer::snapshot() {
  return take_snapshot(server_, *counters_, started_);
}

bool OpsServer::ready() {
  return server_.ready();
}

bool OpsServer::draining() {
  return server_.draining();
}

uint64_t OpsServer::quota_rejections_1h(const ProxySnapshot& s) {
  std::lock_guard lock(window_mu_);
  return rejections_window_.increase(s.taken_at, total_quota_rejections(s));
}

ReloadSample OpsServer::reload() {
  proxy::ReloadOutcome r = server_.reload();
  return ReloadSample{true, r.ok, r.error, r.took};
}

void OpsServer::drain() {
  server_.drain();
}

std::string OpsServer::admin_token() {
  return server_.config()->admin.token;
}

std::string OpsServer::mutation_token() {
  std::string configured = admin_token();
  if (!configured.empty()) return configured;
  {
    std::lock_guard lock(token_mu_);
    if (!generated_token_.empty()) return generated_token_;
  }
  // A reload removed the [admin] token the proxy started with: generate one now.
  if (Status s = prepare_generated_token(); !s) {
    log::error("{}", s.error().message);
    return "";
  }
  std::lock_guard lock(token_mu_);
  return generated_token_;
}

}  // namespace helios::ops
