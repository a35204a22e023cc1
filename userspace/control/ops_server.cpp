#include "control/ops_server.h"

#include <prometheus/exposer.h>

#include <cerrno>

#include "common/log.h"
#include "server/server.h"

namespace helios::control {
namespace {

constexpr Nanos kRetryEvery = 250 * kNanosPerMilli;
constexpr Nanos kRejectionWindow = 3600 * kNanosPerSec;
constexpr Nanos kRejectionStep = 30 * kNanosPerSec;

}  // namespace

OpsServer::OpsServer(server::Server& server, MetricsCounters* counters)
    : server_(server),
      own_counters_(counters ? nullptr : std::make_unique<MetricsCounters>()),
      counters_(counters ? counters : own_counters_.get()),
      started_(monotonic_now()),
      admin_(*this),
      rejections_window_(started_, kRejectionWindow, kRejectionStep) {
  collector_ = std::make_shared<MetricsCollector>([this] { return snapshot(); });
}

Result<std::unique_ptr<OpsServer>> OpsServer::start(server::Server& server,
                                                    MetricsCounters* counters) {
  std::unique_ptr<OpsServer> ops(new OpsServer(server, counters));
  auto cfg = server.config();
  ops->metrics_enabled_ = cfg->metrics.enabled;
  ops->metrics_address_ =
      HostPort{cfg->metrics.prometheus_address, cfg->metrics.prometheus_port}.to_string();

  if (Status s = ops->try_bind_admin(); !s) {
    if (s.error().code != EADDRINUSE) return s.error();
    log::warn("{}; retrying in the background (a draining predecessor may still hold it)",
              s.error().message);
  }
  if (ops->metrics_enabled_) {
    if (Status s = ops->try_start_exposer(); !s)
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
  if (exposer_) {
    exposer_->RemoveCollectable(collector_);
    exposer_.reset();
    exposer_ready_.store(false);
  }
}

Status OpsServer::try_bind_admin() {
  auto cfg = server_.config();
  const HostPort& a = cfg->proxy.admin_listen_address;
  if (Status s = admin_.bind(a.host, a.port); !s) return s;
  admin_bound_.store(true);
  admin_thread_ = std::thread([this] { admin_.serve(); });
  log::info("admin API on http://{}", a.to_string());
  if (cfg->admin.token.empty() && a.host != "127.0.0.1" && a.host != "::1" && a.host != "localhost")
    log::warn("admin API on {} has no [admin] token: anyone who reaches it may reload or drain",
              a.to_string());
  return {};
}

Status OpsServer::try_start_exposer() {
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(metrics_address_, 2);
    exposer->RegisterCollectable(collector_);
    exposer_ = std::move(exposer);
  } catch (const std::exception& e) {
    return Error{EADDRINUSE, "metrics: cannot listen on " + metrics_address_ + ": " + e.what()};
  }
  exposer_ready_.store(true);
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
      if (metrics_enabled_ && !exposer_ready_.load()) {
        Status s = try_start_exposer();
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
  server::ReloadOutcome r = server_.reload();
  return ReloadSample{true, r.ok, r.error, r.took};
}

void OpsServer::drain() {
  server_.drain();
}

std::string OpsServer::admin_token() {
  return server_.config()->admin.token;
}

}  // namespace helios::control
