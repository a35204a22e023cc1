// Workers that follow the load, the control thread's half (the workers' half is
// worker_move.cpp): every period it reads each worker thread's CPU time, feeds the busy
// fractions to the LoadGovernor and publishes how many workers are awake.
#include <pthread.h>
#include <time.h>

#include "common/log.h"
#include "proxy/proxy.h"

namespace helios::proxy {
namespace {
constexpr Nanos kLoadPeriod = 200 * kNanosPerMilli;

Nanos thread_cpu(clockid_t clock) {
  timespec ts{};
  if (clock_gettime(clock, &ts) != 0) return 0;
  return Nanos(ts.tv_sec) * kNanosPerSec + ts.tv_nsec;
}

LoadGovernorSettings governor_settings(const config::Config& cfg, size_t workers) {
  LoadGovernorSettings s;
  s.max_workers = uint32_t(workers);
  s.busy_target = cfg.proxy.worker_busy_target;
  return s;
}
}  // namespace

void Proxy::start_following_load(const config::Config& cfg) {
  governor_.set_settings(governor_settings(cfg, workers_.size()));
  worker_clocks_.clear();
  for (auto& t : threads_) {
    clockid_t clock{};
    if (pthread_getcpuclockid(t.native_handle(), &clock) != 0) {
      log::warn("workers follow the load: no CPU clock for a worker thread; all stay awake");
      worker_clocks_.clear();
      break;
    }
    worker_clocks_.push_back(clock);
  }
  worker_cpu_.assign(worker_clocks_.size(), 0);
  for (size_t i = 0; i < worker_clocks_.size(); ++i) worker_cpu_[i] = thread_cpu(worker_clocks_[i]);
  last_load_check_ = monotonic_now();
  publish_active_workers(cfg);
}

void Proxy::publish_active_workers(const config::Config& cfg) {
  bool follow = cfg.proxy.worker_scaling == config::WorkerScaling::kLoad &&
                worker_clocks_.size() == workers_.size();
  uint32_t n = follow ? governor_.active() : uint32_t(workers_.size());
  if (ctx_.active_workers.exchange(n, std::memory_order_relaxed) != n)
    log::debug("workers awake: {} of {}", n, workers_.size());
}

void Proxy::follow_load(Nanos now) {
  if (now - last_load_check_ < kLoadPeriod || worker_clocks_.empty()) return;
  Nanos wall = now - last_load_check_;
  last_load_check_ = now;
  std::vector<double> busy(worker_clocks_.size());
  for (size_t i = 0; i < worker_clocks_.size(); ++i) {
    Nanos cpu = thread_cpu(worker_clocks_[i]);
    busy[i] = double(cpu - worker_cpu_[i]) / double(wall);
    worker_cpu_[i] = cpu;
  }
  auto cfg = config();
  governor_.observe(busy);
  publish_active_workers(*cfg);
}

void Proxy::reconfigure_load(const config::Config& cfg) {
  governor_.set_settings(governor_settings(cfg, workers_.size()));
  publish_active_workers(cfg);
}

}  // namespace helios::proxy
