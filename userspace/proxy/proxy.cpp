#include "proxy/proxy.h"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <future>

#include "common/log.h"
#include "io/listener.h"
#include "pg/auth_file.h"
#include "pg/scram_crypto.h"
#include "proxy/bypass_policy.h"
#include "proxy/messenger.h"
#include "proxy/server_tls.h"
#include "tenant/glob.h"

namespace helios::proxy {
namespace {

// CPUs this process may run on (taskset, cgroup cpusets), not every CPU of the machine: more
// workers than that only adds context switches.
int usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return int(std::thread::hardware_concurrency());
}

Result<pool::ConnectorSettings> connector_settings(const config::Config& cfg) {
  pool::ConnectorSettings s;
  s.address = pool::ServerAddress{cfg.backend.host, cfg.backend.port};
  for (const auto& h : cfg.backend.host_list())
    s.hosts.push_back(pool::ServerAddress{h.host, h.port});
  s.connection_timeout = cfg.backend.connection_timeout;
  s.tcp_user_timeout = cfg.backend.tcp_user_timeout;
  if (cfg.connection_pool.statement_timeout > 0)
    s.extra_params.emplace_back(
        "options", "-c statement_timeout=" +
                       std::to_string(cfg.connection_pool.statement_timeout / kNanosPerMilli));
  auto tls = server_tls_from(cfg);
  if (!tls) return tls.error();
  s.tls = std::move(*tls);
  return s;
}

// Each client takes one descriptor and each backend one: lift the soft limit to the hard one,
// and say so if even that cannot hold max_client_connections.
void raise_fd_limit(const config::Config& cfg) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  rlim_t need = rlim_t(cfg.connection_pool.max_client_connections) + 1024;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
    log::warn(
        "open-files limit is {}, but max_client_connections = {} needs about {}: clients "
        "beyond it wait in the listen queue (raise LimitNOFILE / ulimit -n)",
        rl.rlim_cur, cfg.connection_pool.max_client_connections, need);
}

void set_log_level(config::LogLevel l) {
  switch (l) {
    case config::LogLevel::kTrace:
      spdlog::set_level(spdlog::level::trace);
      break;
    case config::LogLevel::kDebug:
      spdlog::set_level(spdlog::level::debug);
      break;
    case config::LogLevel::kInfo:
      spdlog::set_level(spdlog::level::info);
      break;
    case config::LogLevel::kWarn:
      spdlog::set_level(spdlog::level::warn);
      break;
    case config::LogLevel::kError:
      spdlog::set_level(spdlog::level::err);
      break;
    case config::LogLevel::kOff:
      spdlog::set_level(spdlog::level::off);
      break;
  }
}

// A refused file may hold anything (binary garbage): its bytes reach logs and JSON only as
// printable ASCII, the rest as \xNN, at most 2,000 characters.
std::string printable(const std::string& text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= 2000) {
      out += "...";
      break;
    }
    if ((c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t') {
      out.push_back(char(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace

Proxy::Proxy(config::Config cfg, std::string config_path)
    : config_path_(std::move(config_path)),
      cfg_(std::make_shared<const config::Config>(std::move(cfg))),
      ctx_(uint32_t(cfg_->tenant_quotas.max_tenants)) {}

Proxy::~Proxy() {
  stop_fleet();
  if (!threads_.empty()) {
    Nanos now = monotonic_now();
    for (auto& w : workers_)
      w->post([now](Worker& wk) { wk.begin_drain(now); }, *control_messenger_);
    for (auto& t : threads_) t.join();
  }
  if (ctx_.health) ctx_.health->stop();
  if (ctx_.connector) ctx_.connector->stop();
}

std::shared_ptr<const config::Config> Proxy::config() const {
  std::lock_guard lock(cfg_mu_);
  return cfg_;
}

ReloadOutcome Proxy::last_reload() const {
  std::lock_guard lock(cfg_mu_);
  return last_reload_;
}

Status Proxy::start() {
  auto cfg = config();
  set_log_level(cfg->proxy.log_level);
  // Signals are read from a signalfd by the control loop: block them in every thread.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (auto key = pg::scram_crypto::random_bytes(32)) ctx_.mock_scram_key = *key;
  ctx_.make_messenger = [this] { return std::make_unique<ThreadMessenger>(ctx_); };
  auto conn_settings = connector_settings(*cfg);
  if (!conn_settings) return conn_settings.error();
  ctx_.connector =
      std::make_unique<pool::Connector>(std::move(*conn_settings), ctx_.make_messenger, 4);
  ctx_.pools = std::make_unique<pool::PoolManager>(ctx_.backends, *ctx_.connector);
  ctx_.auth = std::make_unique<AuthService>(*ctx_.connector);
  if (auto s = ctx_.auth->configure(*cfg); !s) return s;
  if (auto s = start_health_checker(*cfg); !s) return s;
  if (auto s = load_client_tls(*cfg); !s) return s;
  if (auto s = ctx_.tenants.apply_limits(tenant_rules_from(*cfg), default_tenant_limits_from(*cfg),
                                         monotonic_now());
      !s)
    return s;
  ctx_.quotas_enabled.store(cfg->tenant_quotas.enabled);
  ctx_.tenants.protect(cfg->tenant_quotas.default_tenant);
  if (auto s = start_fleet(*cfg); !s) return s;

  raise_fd_limit(*cfg);
  int n = cfg->proxy.workers > 0 ? cfg->proxy.workers : usable_cpus();
  if (n < 1) n = 1;
  if (n > 64) n = 64;
  io::HostPort hp{cfg->proxy.listen_address.host, cfg->proxy.listen_address.port};
  std::vector<UniqueFd> listeners;
  for (int i = 0; i < n; ++i) {
    auto listener = io::listen_tcp(hp, /*reuse_port=*/true);
    if (!listener) return listener.error();
    listeners.push_back(std::move(*listener));
    auto w = std::make_unique<Worker>(uint16_t(i), ctx_);
    w->on_config(cfg);
    ctx_.workers.push_back(w.get());
    workers_.push_back(std::move(w));
  }
  attach_kernel_features(*cfg, listeners.front().get());
  load_splice_engine(*cfg, n);
  control_messenger_ = std::make_unique<ThreadMessenger>(ctx_);
  // Each ring is created on the thread that will submit to it (IORING_SETUP_SINGLE_ISSUER).
  std::vector<std::promise<Status>> inits(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    threads_.emplace_back([wp = workers_[size_t(i)].get(), l = std::move(listeners[size_t(i)]),
                           &init = inits[size_t(i)]]() mutable {
      Status s = wp->init(std::move(l));
      bool ok = s.ok();
      init.set_value(std::move(s));
      if (ok) wp->run();
    });
  }
  Status failed;
  for (auto& p : inits) {
    Status s = p.get_future().get();
    if (!s && failed) failed = s;
  }
  if (!failed) {
    Nanos now = monotonic_now();
    for (size_t i = 0; i < workers_.size(); ++i)
      if (workers_[i]->initialized())
        workers_[i]->post([now](Worker& wk) { wk.begin_drain(now); }, *control_messenger_);
    for (auto& t : threads_) t.join();
    threads_.clear();
    return failed;
  }
  if (fleet_) fleet_->start();  // after the workers exist: it posts to them
  start_following_load(*cfg);
  ready_.store(true, std::memory_order_release);
  log::info("heliosproxy {} listening on {} ({} worker{}{}, {} mode, {} data path)", HELIOS_VERSION,
            cfg->proxy.listen_address.to_string(), n, n == 1 ? "" : "s",
            n > 1 && cfg->proxy.worker_scaling == config::WorkerScaling::kLoad
                ? " following the load"
                : "",
            config::to_string(cfg->proxy.mode), config::to_string(cfg->proxy.data_path));
  return {};
}

// Certificates are read at start and at every reload (new connections get the new ones).
// nullptr when client TLS is off.
Result<std::shared_ptr<io::TlsContext>> Proxy::client_tls_for(const config::Config& cfg) {
  if (cfg.tls.client_tls_mode == config::ClientTlsMode::kDisable)
    return std::shared_ptr<io::TlsContext>();
  return io::TlsContext::server(cfg.tls.cert_file, cfg.tls.key_file, cfg.tls.ca_file);
}

Status Proxy::load_client_tls(const config::Config& cfg) {
  auto tls = client_tls_for(cfg);
  if (!tls) return tls.error();
  ctx_.set_client_tls(std::move(*tls));
  return {};
}

// Everything of a reload that can fail, done before anything changes: the file, the serving
// check, the tenant patterns, the auth file, the backend TLS settings and the client
// certificates. A refused reload thus
// leaves the running config, the stats, /health and the workers exactly as they were.
Result<Proxy::PreparedReload> Proxy::prepare_reload() const {
  auto loaded = config::load_config_file(config_path_);
  if (!loaded) return loaded.error();
  if (auto s = config::check_serving(*loaded, config().get()); !s) return s.error();
  // Pools and the health checker index hosts by their place in the list: with several hosts a
  // new list needs a restart (a reload would pair one host's index with another's address).
  const auto& now_hosts = config()->backend.host_list();
  const auto& new_hosts = loaded->backend.host_list();
  if ((now_hosts.size() > 1 || new_hosts.size() > 1) && now_hosts != new_hosts)
    return Error{EINVAL, config_path_ + ": [backend] hosts changed; restart the proxy to apply it"};
  if (loaded->proxy.receive_buffers != config()->proxy.receive_buffers)
    log::warn("{}: [proxy] receive_buffers changed to {}; it takes effect at the next start",
              config_path_, loaded->proxy.receive_buffers);
  std::vector<std::string> patterns;
  for (const auto& rule : tenant_rules_from(*loaded)) patterns.push_back(rule.pattern);
  if (auto m = tenant::RuleMatcher::build(patterns); !m)
    return Error{m.error().code, config_path_ + ": " + m.error().message};
  if (!loaded->auth.auth_file.empty()) {
    if (auto af = pg::load_auth_file(loaded->auth.auth_file); !af) return af.error();
  }
  // The backend TLS settings (sslmode, sslrootcert), which apply() hands to the connector.
  if (auto cs = connector_settings(*loaded); !cs) return cs.error();
  auto tls = client_tls_for(*loaded);
  if (!tls) return tls.error();
  return PreparedReload{std::make_shared<const config::Config>(std::move(*loaded)),
                        std::move(*tls)};
}

void Proxy::attach_kernel_features(const config::Config& cfg, int listener_fd) {
  using K = SharedContext::KernelFeature;
  bpf::route_bpf_library_logs();
  if (cfg.edge.enabled) {
    if (auto g = bpf::EdgeGuard::attach(edge_spec_from_config(cfg))) {
      edge_.emplace(std::move(*g));
      ctx_.edge_guard = &*edge_;
      ctx_.kernel_features[K::kEdgeGuard] = 1;
      log::info("XDP edge guard attached to {} ({})", cfg.edge.interface, edge_->mode_name());
    } else {
      ctx_.kernel_features[K::kEdgeGuard] = -1;
      log::warn("running without the XDP edge guard: {}", g.error().message);
    }
  }
  if (!cfg.vip.address.empty()) {
    if (auto v = bpf::VipSteering::attach(cfg.vip.address, cfg.vip.port, listener_fd,
                                          cfg.proxy.instance)) {
      vip_.emplace(std::move(*v));
      ctx_.kernel_features[K::kVipSteering] = 1;
      log::info("transparent VIP {}:{} steered to the proxy's listener", cfg.vip.address,
                cfg.vip.port);
    } else {
      ctx_.kernel_features[K::kVipSteering] = -1;
      log::warn("running without the VIP {}:{}: {}", cfg.vip.address, cfg.vip.port,
                v.error().message);
    }
  }
  const BypassDecision d = decide_bypass(gather_bypass_facts(cfg));
  const bool forced = cfg.proxy.same_host_bypass == config::BypassSetting::kOn;
  if (d.outcome == BypassOutcome::kKernelRefused) {
    ctx_.kernel_features[K::kSameHostBypass] = -1;
    log::info("same-host bypass (auto) not attached: {}", d.why);
  } else if (d.outcome == BypassOutcome::kSkip) {
    if (cfg.proxy.same_host_bypass == config::BypassSetting::kAuto)
      log::info("same-host bypass (auto) not attached: {}", d.why);
  } else {
    auto spec = bypass_spec_from_config(cfg);
    auto b = spec ? bpf::SameHostBypass::attach(*spec) : Result<bpf::SameHostBypass>(spec.error());
    if (b) {
      bypass_.emplace(std::move(*b));
      ctx_.kernel_features[K::kSameHostBypass] = 1;
      log::info("same-host bypass on (sockops + sk_msg): {}", d.why);
    } else {
      ctx_.kernel_features[K::kSameHostBypass] = -1;
      if (forced)
        log::warn("running without the same-host bypass: {}", b.error().message);
      else
        log::info("same-host bypass (auto) not attached: {}", b.error().message);
    }
  }
}

void Proxy::apply(std::shared_ptr<const config::Config> cfg) {
  if (edge_) {
    if (auto s = edge_->update(edge_spec_from_config(*cfg)); !s)
      log::warn("XDP edge guard kept its old rates: {}", s.error().message);
  }
  set_log_level(cfg->proxy.log_level);
  if (auto cs = connector_settings(*cfg)) ctx_.connector->apply_settings(std::move(*cs));
  ctx_.pools->apply(*cfg);
  ctx_.quotas_enabled.store(cfg->tenant_quotas.enabled);
  {
    std::lock_guard lock(cfg_mu_);
    cfg_ = cfg;
  }
  for (auto& w : workers_) w->post([cfg](Worker& wk) { wk.on_config(cfg); }, *control_messenger_);
  if (!threads_.empty()) reconfigure_load(*cfg);
}

ReloadOutcome Proxy::reload() {
  std::lock_guard guard(control_mu_);
  Nanos start = monotonic_now();
  ReloadOutcome out;
  auto prepared = prepare_reload();
  if (!prepared) {
    out.error = prepared.error().message;
  } else {
    const config::Config& cfg = *prepared->cfg;
    // These checked what could fail in prepare_reload(); an error now is a bug, and is
    // reported rather than half-applied further.
    if (auto s = ctx_.tenants.apply_limits(tenant_rules_from(cfg), default_tenant_limits_from(cfg),
                                           start);
        !s) {
      out.error = s.error().message;
    } else if (auto a = ctx_.auth->configure(cfg); !a) {
      out.error = a.error().message;
    } else {
      ctx_.set_client_tls(std::move(prepared->client_tls));
      ctx_.tenants.protect(cfg.tenant_quotas.default_tenant);
      apply(std::move(prepared->cfg));
      out.ok = true;
    }
  }
  out.took = monotonic_now() - start;
  if (out.ok)
    log::info("reloaded {} in {:.2f} ms", config_path_, double(out.took) / 1e6);
  else
    log::error("reload refused, keeping the running config: {}", printable(out.error));
  ctx_.metrics.count_reload(out.ok, out.took);
  std::lock_guard lock(cfg_mu_);
  last_reload_ = out;
  last_reload_.error = printable(out.error);
  return last_reload_;
}

void Proxy::drain() {
  std::lock_guard guard(control_mu_);
  if (draining_.exchange(true)) return;
  auto cfg = config();
  Nanos deadline = monotonic_now() + cfg->proxy.drain_timeout;
  ready_.store(false, std::memory_order_release);
  log::info("draining: no new connections; open transactions have {} s to finish",
            cfg->proxy.drain_timeout / kNanosPerSec);
  for (auto& w : workers_)
    w->post([deadline](Worker& wk) { wk.begin_drain(deadline); }, *control_messenger_);
}

void Proxy::upkeep(Nanos now) {
  for (pool::Pool* p : ctx_.pools->all()) p->upkeep(*control_messenger_, now);
  if (size_t freed = heap_trim_.maybe_trim(now))
    log::debug("returned free heap memory to the system ({} MB free in the arenas)", freed >> 20);
  if (splice_counters_) {
    // What the kernel forwarded joins the same byte counters as the user-space relay. (Queries
    // and transactions of kernel leases are counted by the workers from the lease results.)
    std::vector<uint32_t> ids;
    ctx_.tenants.for_each([&](tenant::TenantState& t) {
      if (t.index() < HELIOS_SOCK_MAX_TENANTS) ids.push_back(t.index());
    });
    if (auto deltas = splice_counters_->poll(ids)) {
      for (const auto& d : *deltas) {
        ctx_.metrics.add_bytes(BytePath::kKernel, ByteDirection::kClientToServer,
                               d.bytes_to_backend);
        ctx_.metrics.add_bytes(BytePath::kKernel, ByteDirection::kServerToClient,
                               d.bytes_to_client);
      }
    }
  }
}

// data_path "kernel" or "auto" anywhere in the config: the splice engine is loaded once. If the
// kernel lacks something, one line says so and every lease runs in user space.
void Proxy::load_splice_engine(const config::Config& cfg, int workers) {
  bool wanted = cfg.proxy.data_path != config::DataPathMode::kUserspace;
  for (const auto& r : cfg.tenant_quotas.limits)
    wanted = wanted || r.limits.data_path != config::DataPathMode::kUserspace;
  if (!wanted) return;
  bpf::SpliceOptions o;
  o.instance = cfg.proxy.instance;
  o.workers = uint16_t(workers);
  auto eng = bpf::SpliceEngine::load(o);
  if (!eng) {
    ctx_.kernel_features[SharedContext::kLeaseSplicing] = -1;
    log::warn("data_path \"{}\" unavailable, falling back to userspace: {}",
              config::to_string(cfg.proxy.data_path), eng.error().message);
    return;
  }
  splice_ = std::make_unique<bpf::SpliceEngine>(std::move(*eng));
  splice_counters_ = std::make_unique<datapath::KernelTenantCounters>(*splice_);
  ctx_.splice = splice_.get();
  ctx_.kernel_features[SharedContext::kLeaseSplicing] = 1;
  log::info("kernel lease splicing on (maps under {})", splice_->pin_path());
}

int Proxy::run() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  Nanos next_upkeep = monotonic_now() + kNanosPerSec;
  while (true) {
    pollfd p{sfd, POLLIN, 0};
    ::poll(&p, 1, 200);
    signalfd_siginfo si;
    while (::read(sfd, &si, sizeof si) == sizeof si) {
      if (si.ssi_signo == SIGHUP)
        reload();
      else
        drain();
    }
    Nanos now = monotonic_now();
    follow_load(now);
    if (now >= next_upkeep) {
      upkeep(now);
      next_upkeep = now + kNanosPerSec;
    }
    if (draining_.load()) {
      bool all_done = true;
      for (auto& w : workers_) all_done &= w->stats().clients.load() == 0 && w->finished();
      if (all_done) break;
    }
  }
  ::close(sfd);
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (ctx_.health) ctx_.health->stop();
  ctx_.connector->stop();
  log::info("drained; exiting");
  return 0;
}

}  // namespace helios::proxy
