#include "pool/health_checker.h"

#include <charconv>

#include "common/log.h"

namespace helios::pool {
namespace {

// One round trip per host. The replay delay counts only while received WAL waits to be
// replayed: an idle primary must not make its replicas look late.
constexpr const char* kCheckSql =
    "SELECT pg_is_in_recovery(), "
    "(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
    "ELSE pg_current_wal_insert_lsn() END)::text, "
    "pg_is_in_recovery() AND pg_is_wal_replay_paused(), "
    "COALESCE(CASE WHEN pg_is_in_recovery() AND pg_last_wal_receive_lsn() IS DISTINCT FROM "
    "pg_last_wal_replay_lsn() THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp()) "
    "END, 0)::float8";

bool is_true(const std::optional<std::string>& v) {
  return v && (*v == "t" || *v == "true");
}

}  // namespace

HealthChecker::HealthChecker(HostTable& table, HealthCheckSettings settings, OnBan on_ban)
    : table_(table),
      settings_(std::move(settings)),
      on_ban_(std::move(on_ban)),
      sessions_(table.size()) {
  thread_ = std::thread([this] { loop(); });
}

HealthChecker::~HealthChecker() {
  stop();
}

void HealthChecker::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HealthChecker::loop() {
  for (;;) {
    round();
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, std::chrono::nanoseconds(settings_.interval), [&] { return stopping_; }))
      return;
  }
}

void HealthChecker::check_now() {
  round();
}

void HealthChecker::round() {
  std::lock_guard round_lock(round_mu_);
  const size_t n = table_.size();
  std::vector<HostCheck> checks(n);
  std::vector<bool> checked(n, false);
  Nanos now = monotonic_now();
  const Nanos started = now;
  // The primary first: replicas checked after it can only have replayed more, so their lag in
  // bytes is never overstated.
  std::vector<size_t> order;
  if (int p = table_.primary(); p >= 0) order.push_back(size_t(p));
  for (size_t i = 0; i < n; ++i)
    if (int(i) != table_.primary()) order.push_back(i);
  for (size_t i : order) {
    if (table_.banned(i, now)) continue;  // sits out its ban_time
    const Nanos budget = std::min(settings_.interval, settings_.connect_timeout);
    checks[i] = check_one(i, monotonic_now() + budget);
    checked[i] = true;
    if (!checks[i].ok) sessions_[i].reset();
  }
  for (size_t i : table_.record_round(checks, checked, started, monotonic_now())) {
    log::warn("host {}:{} failed its health check and is banned: {}", table_.address(i).host,
              table_.address(i).port, checks[i].error);
    if (on_ban_) on_ban_(i);
  }
}

HostCheck HealthChecker::check_one(size_t i, Nanos deadline) {
  HostCheck c;
  if (!sessions_[i]) {
    auto s = pg_login(table_.address(i), settings_.user, settings_.database, {}, settings_.secret,
                      deadline, settings_.tls);
    if (!s) {
      c.error = s.error().message;
      return c;
    }
    sessions_[i] = std::move(*s);
  }
  auto r = pg_query(*sessions_[i], kCheckSql, {}, deadline);
  if (!r) {
    c.error = r.error().message;
    return c;
  }
  if (r->rows.size() != 1 || r->rows[0].size() != 4) {
    c.error = "unexpected answer to the health check";
    return c;
  }
  const Row& row = r->rows[0];
  c.ok = true;
  c.in_recovery = is_true(row[0]);
  c.wal_lsn = row[1] ? parse_lsn(*row[1]) : 0;
  c.replay_paused = is_true(row[2]);
  if (row[3]) {
    double d = 0;
    std::from_chars(row[3]->data(), row[3]->data() + row[3]->size(), d);
    c.replay_delay_s = d;
  }
  return c;
}

}  // namespace helios::pool
