#include "pool/connector.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>

namespace helios::pool {

Connector::Connector(ConnectorSettings settings, MessengerFactory make_messenger, int threads)
    : make_messenger_(std::move(make_messenger)), settings_(std::move(settings)) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

Connector::~Connector() {
  stop();
}

void Connector::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void Connector::request(Pool* pool) {
  run([this, pool](Messenger& m) { connect_one(pool, m); });
}

void Connector::run(Job job) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void Connector::apply_settings(ConnectorSettings s) {
  std::lock_guard lock(mu_);
  settings_ = std::move(s);
}

ConnectorSettings Connector::settings() const {
  std::lock_guard lock(mu_);
  return settings_;
}

void Connector::loop() {
  std::unique_ptr<Messenger> messenger = make_messenger_();
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job(*messenger);
  }
}

void Connector::connect_one(Pool* pool, Messenger& m) {
  ConnectorSettings s = settings();
  Nanos deadline = monotonic_now() + s.connection_timeout;
  const uint16_t h = pool->key().host;
  const ServerAddress& addr = h < s.hosts.size() ? s.hosts[h] : s.address;
  auto session = pg_login(addr, pool->key().user, pool->key().database, s.extra_params,
                          pool->login_secret(), deadline, s.tls);
  if (!session) {
    pool->on_connect_failed(session.error(), m);
    return;
  }
  if (s.tcp_user_timeout > 0 && !addr.host.starts_with('/')) {
    // A silent network (PostgreSQL's host gone, a partition) then fails the backend's socket
    // with ETIMEDOUT and its client gets an error, instead of waiting out TCP's retries.
    const unsigned ms = unsigned(std::min<Nanos>(s.tcp_user_timeout / kNanosPerMilli, INT32_MAX));
    ::setsockopt(session->fd.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
  }
  pool->on_connected(std::move(*session), m, monotonic_now());
}

}  // namespace helios::pool
