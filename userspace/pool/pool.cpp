#include "pool/pool.h"

#include <poll.h>
#include <sys/socket.h>

#include "common/log.h"
#include "pool/backend_table.h"
#include "pool/connector.h"

namespace helios::pool {

std::string PoolKey::to_string() const {
  std::string s = database + "/" + user;
  if (!group.empty()) s += "/" + group;
  if (host > 0) s += "@" + std::to_string(host);
  return s;
}

Pool::Pool(PoolKey key, PoolSettings settings, BackendTable& table, Connector& connector,
           const std::vector<double>& histogram_buckets)
    : key_(std::move(key)),
      name_(key_.to_string()),
      table_(table),
      connector_(connector),
      settings_(settings),
      reset_query_(settings.reset_query),
      mode_(settings.mode),
      counters_(histogram_buckets),
      rng_(uint64_t(monotonic_now()) ^ uint64_t(uintptr_t(this))) {}

Pool::~Pool() {
  std::lock_guard lock(mu_);
  while (Backend* b = idle_head_) {
    idle_head_ = b->idle_next;
    table_.free(b);
  }
}

Nanos Pool::lifetime_for_new() const {
  // xorshift: cheap, and only used to spread reconnects apart.
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  double frac = double(rng_ % 1000000) / 1e6;
  return Nanos(double(settings_.max_lifetime) * (1.0 - settings_.lifetime_jitter * frac));
}

void Pool::push_idle(Backend* b, Nanos now) {
  if (!b->move_to(BackendState::kIdle))
    counters_.refused_transitions.fetch_add(1, std::memory_order_relaxed);
  b->idle_since = now;
  b->idle_prev = nullptr;
  b->idle_next = idle_head_;
  if (idle_head_) idle_head_->idle_prev = b;
  idle_head_ = b;
  ++idle_;
  refresh_busy_locked();
}

Backend* Pool::pop_idle(Nanos now) {
  while (Backend* b = idle_head_) {
    idle_head_ = b->idle_next;
    if (idle_head_) idle_head_->idle_prev = nullptr;
    b->idle_next = nullptr;
    --idle_;
    refresh_busy_locked();
    // A backend idle for a while may have been terminated by the server: check it before use.
    if (now - b->idle_since > settings_.server_check_delay && is_dead(b)) {
      counters_.dead_idle_detected.fetch_add(1, std::memory_order_relaxed);
      log::info("pool {}: backend pid {} died while idle; replacing it", name_, b->process_id);
      close_locked(b);
      continue;
    }
    return b;
  }
  return nullptr;
}

bool Pool::is_dead(Backend* b) const {
  // An idle backend has nothing to say; anything readable is an error report or EOF.
  pollfd p{b->fd.get(), POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) != 0;
}

void Pool::close_locked(Backend* b) {
  --total_;
  refresh_busy_locked();
  ::shutdown(b->fd.get(), SHUT_RDWR);
  table_.free(b);
}

void Pool::request_connects_locked() {
  // Target: a backend for every waiter on top of what is open, at least min_connections warm,
  // never more than max_connections. Connects already requested count toward the target.
  int64_t waiters = int64_t(waiters_.size());
  int64_t target =
      std::min(settings_.max_connections, std::max(settings_.min_connections, total_ + waiters));
  for (int64_t n = target - total_ - connecting_; n > 0; --n) {
    ++connecting_;
    connector_.request(this);
  }
}

Backend* Pool::acquire(Waiter* w, Nanos now) {
  std::lock_guard lock(mu_);
  if (Backend* b = pop_idle(now)) {
    if (!b->move_to(BackendState::kLeased))
      counters_.refused_transitions.fetch_add(1, std::memory_order_relaxed);
    counters_.acquires.fetch_add(1, std::memory_order_relaxed);
    return b;
  }
  waiters_.set_weight(w->node.tenant, w->weight);
  waiters_.push(&w->node);
  waiting_.store(int64_t(waiters_.size()), std::memory_order_relaxed);
  refresh_busy_locked();
  request_connects_locked();
  return nullptr;
}

bool Pool::cancel_wait(Waiter* w) {
  std::lock_guard lock(mu_);
  bool removed = waiters_.remove(&w->node);
  waiting_.store(int64_t(waiters_.size()), std::memory_order_relaxed);
  refresh_busy_locked();
  return removed;
}

void Pool::release(Backend* b, Messenger& m, Nanos now) {
  counters_.releases.fetch_add(1, std::memory_order_relaxed);
  if (b->lease_started) {
    counters_.lease_ns_total.fetch_add(uint64_t(now - b->lease_started), std::memory_order_relaxed);
    counters_.lease_duration.observe(now - b->lease_started);
    b->lease_started = 0;
  }
  std::lock_guard lock(mu_);
  bool expired = now >= b->expires_at;
  bool over = total_ > settings_.max_connections;  // shrunk by a reload
  if (b->broken || expired || over) {
    if (expired) counters_.closed_lifetime.fetch_add(1, std::memory_order_relaxed);
    if (b->broken) counters_.closed_broken.fetch_add(1, std::memory_order_relaxed);
    close_locked(b);
    if (!waiters_.empty() || total_ + connecting_ < settings_.min_connections)
      request_connects_locked();
    return;
  }
  if (auto* node = waiters_.pop()) {
    waiting_.store(int64_t(waiters_.size()), std::memory_order_relaxed);
    refresh_busy_locked();
    auto* w = reinterpret_cast<Waiter*>(node);
    if (!b->move_to(BackendState::kLeased))
      counters_.refused_transitions.fetch_add(1, std::memory_order_relaxed);
    counters_.acquires.fetch_add(1, std::memory_order_relaxed);
    m.grant(*w, b);
    return;
  }
  push_idle(b, now);
}

void Pool::discard(Backend* b, Messenger& m) {
  (void)m;
  std::lock_guard lock(mu_);
  counters_.closed_broken.fetch_add(1, std::memory_order_relaxed);
  close_locked(b);
  if (!waiters_.empty()) request_connects_locked();
}

void Pool::on_connected(ServerSession session, Messenger& m, Nanos now) {
  Backend* b = table_.allocate();
  std::lock_guard lock(mu_);
  --connecting_;
  counters_.connects.fetch_add(1, std::memory_order_relaxed);
  if (!b) {
    last_error_ = "backend table full";
    return;
  }
  b->fd = std::move(session.fd);
  if (session.ssl) b->tls = io::TlsConn::adopt(session.ssl.release(), session.tls_ctx);
  b->pool = this;
  b->process_id = session.process_id;
  b->secret_key = session.secret_key;
  b->created_at = now;
  b->expires_at = now + lifetime_for_new();
  b->params = session.params;
  if (!has_params_.load(std::memory_order_relaxed)) {
    server_params_ = session.params;
    has_params_.store(true, std::memory_order_release);
  }
  last_error_.clear();
  last_error_sqlstate_.clear();
  ++total_;
  refresh_busy_locked();
  if (auto* node = waiters_.pop()) {
    waiting_.store(int64_t(waiters_.size()), std::memory_order_relaxed);
    refresh_busy_locked();
    auto* w = reinterpret_cast<Waiter*>(node);
    if (!b->move_to(BackendState::kLeased))
      counters_.refused_transitions.fetch_add(1, std::memory_order_relaxed);
    counters_.acquires.fetch_add(1, std::memory_order_relaxed);
    m.grant(*w, b);
    return;
  }
  push_idle(b, now);
}

void Pool::on_connect_failed(const Error& e, Messenger& m) {
  std::lock_guard lock(mu_);
  --connecting_;
  counters_.connect_failures.fetch_add(1, std::memory_order_relaxed);
  // pg_login reports server errors as "SQLSTATE: message".
  last_error_ = e.message;
  last_error_sqlstate_.clear();
  if (e.message.size() > 7 && e.message[5] == ':' && e.message[6] == ' ') {
    last_error_sqlstate_ = e.message.substr(0, 5);
    last_error_ = e.message.substr(7);
  }
  log::warn("pool {}: cannot open a backend: {}", name_, e.message);
  // With no backend at all, nobody would ever wake the waiters: fail them now with the reason.
  // Otherwise they keep waiting for a release (bounded by acquire_timeout).
  if (total_ == 0 && connecting_ == 0) {
    while (auto* node = waiters_.pop())
      m.fail(*reinterpret_cast<Waiter*>(node), WaitFailure::kConnectFailed);
    waiting_.store(0, std::memory_order_relaxed);
    refresh_busy_locked();
  }
}

void Pool::upkeep(Messenger& m, Nanos now) {
  (void)m;
  std::lock_guard lock(mu_);
  // Walk the idle list from the cold end (LIFO list: oldest idle at the tail).
  Backend* tail = idle_head_;
  while (tail && tail->idle_next) tail = tail->idle_next;
  for (Backend* b = tail; b;) {
    Backend* prev = b->idle_prev;
    bool idle_too_long =
        now - b->idle_since > settings_.idle_timeout && total_ > settings_.min_connections;
    bool expired = now >= b->expires_at;
    bool dead = is_dead(b);
    if (idle_too_long || expired || dead) {
      if (b->idle_prev)
        b->idle_prev->idle_next = b->idle_next;
      else
        idle_head_ = b->idle_next;
      if (b->idle_next) b->idle_next->idle_prev = b->idle_prev;
      --idle_;
      if (dead) {
        counters_.dead_idle_detected.fetch_add(1, std::memory_order_relaxed);
        log::info("pool {}: backend pid {} died while idle; replacing it", name_, b->process_id);
      } else if (expired) {
        counters_.closed_lifetime.fetch_add(1, std::memory_order_relaxed);
      } else {
        counters_.closed_idle.fetch_add(1, std::memory_order_relaxed);
      }
      close_locked(b);
    }
    b = prev;
  }
  close_idle_over_max_locked();
  request_connects_locked();
}

void Pool::close_idle_over_max_locked() {
  if (total_ <= settings_.max_connections || !idle_head_) return;
  Backend* b = idle_head_;
  while (b->idle_next) b = b->idle_next;  // the coldest
  while (b && total_ > settings_.max_connections) {
    Backend* prev = b->idle_prev;
    if (prev)
      prev->idle_next = nullptr;
    else
      idle_head_ = nullptr;
    b->idle_prev = nullptr;
    --idle_;
    counters_.closed_over_max.fetch_add(1, std::memory_order_relaxed);
    close_locked(b);
    b = prev;
  }
}

void Pool::apply_settings(const PoolSettings& s) {
  std::lock_guard lock(mu_);
  settings_ = s;
  reset_query_ = s.reset_query;
  mode_.store(s.mode, std::memory_order_relaxed);
  close_idle_over_max_locked();
  // More room may let waiters proceed right away.
  if (!waiters_.empty()) request_connects_locked();
}

std::string Pool::reset_query() const {
  std::lock_guard lock(mu_);
  return reset_query_;
}

PoolSettings Pool::settings() const {
  std::lock_guard lock(mu_);
  return settings_;
}

void Pool::adopt_server_params(const ParamList& params) {
  std::lock_guard lock(mu_);
  if (has_params_.load(std::memory_order_relaxed) || params.empty()) return;
  server_params_ = params;
  has_params_.store(true, std::memory_order_release);
}

ParamList Pool::server_params() const {
  std::lock_guard lock(mu_);
  return server_params_;
}

std::string Pool::last_connect_sqlstate() const {
  std::lock_guard lock(mu_);
  return last_error_sqlstate_;
}

std::string Pool::last_connect_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

void Pool::set_login_secret(const LoginSecret& s) {
  std::lock_guard lock(mu_);
  secret_ = s;
  has_secret_ = true;
}

LoginSecret Pool::login_secret() const {
  std::lock_guard lock(mu_);
  return secret_;
}

bool Pool::has_login_secret() const {
  std::lock_guard lock(mu_);
  return has_secret_;
}

PoolSnapshot Pool::snapshot() const {
  std::lock_guard lock(mu_);
  PoolSnapshot s;
  s.name = name_;
  s.mode = settings_.mode;
  s.total = total_;
  s.idle = idle_;
  s.active = total_ - idle_;
  s.connecting = connecting_;
  s.waiting = int64_t(waiters_.size());
  s.max = settings_.max_connections;
  s.min = settings_.min_connections;
  s.acquires = counters_.acquires.load(std::memory_order_relaxed);
  s.releases = counters_.releases.load(std::memory_order_relaxed);
  uint64_t ns = counters_.lease_ns_total.load(std::memory_order_relaxed);
  s.avg_lease_ms = s.releases ? double(ns) / double(s.releases) / 1e6 : 0;
  s.last_connect_error = last_error_;
  return s;
}

bool Pool::drained() const {
  std::lock_guard lock(mu_);
  return total_ == idle_;
}

void Pool::close_all_idle(Messenger& m) {
  (void)m;
  std::lock_guard lock(mu_);
  while (Backend* b = idle_head_) {
    idle_head_ = b->idle_next;
    --idle_;
    close_locked(b);
  }
}

}  // namespace helios::pool
