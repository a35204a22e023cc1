#include "proxy/backend_route.h"

#include <string_view>

#include "proxy/client.h"
#include "proxy/context.h"
#include "session/read_only.h"
#include "tenant/tenant_state.h"

namespace helios::proxy {
namespace {

// Larger queued batches are not classified (they go to the primary): the copy stays small.
constexpr uint32_t kClassifyMaxBytes = 16 * 1024;

session::ReadClass classify_queued(const Client* c) {
  if (c->to_backend.empty() || c->to_backend.bytes() > kClassifyMaxBytes || c->wire.unsynced ||
      !c->framer.at_boundary())
    return session::ReadClass::kPrimary;
  std::string batch;
  batch.reserve(c->to_backend.bytes());
  c->to_backend.for_each([&](const uint8_t* data, uint32_t len) {
    batch.append(reinterpret_cast<const char*>(data), len);
  });
  const session::ClientSession* s = c->session.get();
  auto lookup = [s](std::string_view name) -> std::optional<std::string_view> {
    if (!s || name.empty()) return std::nullopt;
    for (const auto& ref : s->pending)
      if (ref.stmt && ref.stmt->server_name == name) {
        std::string_view tail = ref.stmt->tail;  // query\0 ...
        return tail.substr(0, tail.find('\0'));
      }
    return std::nullopt;
  };
  return session::classify_batch(batch, lookup);
}

// [routing] read_write_split, or the client's tenant rule's (rules inherit [routing]'s). Read
// from the worker's config by the tenant's rule index, as query_timeout is.
bool split_enabled(const SharedContext& ctx, const config::Config& cfg, const Client* c) {
  const tenant::TenantState* t = c->tenant;
  if (!t || !ctx.quotas_enabled.load(std::memory_order_relaxed))
    return cfg.routing.read_write_split;
  const int16_t rule = t->rule();
  const auto& rules = cfg.tenant_quotas.limits;
  if (rule >= 0 && size_t(rule) < rules.size()) return rules[size_t(rule)].limits.read_write_split;
  return cfg.tenant_quotas.default_limits.read_write_split;
}

bool may_split(const SharedContext& ctx, const config::Config& cfg, const Client* c) {
  return c->mode != config::PoolMode::kSession && !c->pinned && c->state != ClientState::kWelcome &&
         split_enabled(ctx, cfg, c);
}

}  // namespace

pool::Pool* route_lease(SharedContext& ctx, const config::Config& cfg, Client* c, Nanos now) {
  c->on_replica = false;
  c->lease_read_only = false;
  c->wait_pool = c->pool;
  if (!ctx.hosts) return c->pool;
  pool::HostTable& hosts = *ctx.hosts;
  if (may_split(ctx, cfg, c) && !c->force_primary &&
      classify_queued(c) != session::ReadClass::kPrimary) {
    c->lease_read_only = true;
    // Read-your-writes: the position the client's last primary lease covers, once a health
    // check that started after it has measured the primary (until then: the primary).
    if (c->ryw_since && !c->ryw_lsn) c->ryw_lsn = hosts.primary_lsn_after(c->ryw_since);
    const bool ryw_known = !c->ryw_since || c->ryw_lsn;
    int best = -1;
    int64_t best_busy = 0;
    for (size_t i = 0; ryw_known && i < hosts.size(); ++i) {
      if (!hosts.readable_replica(i, now)) continue;
      if (c->ryw_lsn && !hosts.replayed(i, c->ryw_lsn)) continue;
      pool::Pool* p = ctx.pools->on_host(c->pool, uint16_t(i), cfg);
      const int64_t busy = p->busy_relaxed();
      if (best < 0 || busy < best_busy) {
        best = int(i);
        best_busy = busy;
      }
    }
    if (best >= 0) {
      hosts.count_routed(size_t(best));
      c->on_replica = true;
      c->wait_pool = ctx.pools->on_host(c->pool, uint16_t(best), cfg);
      return c->wait_pool;
    }
  }
  const int primary = hosts.primary();
  if (primary < 0 && c->state == ClientState::kWelcome) {
    // Only the server's parameters are needed: any host in recovery that is not banned.
    for (size_t i = 0; i < hosts.size(); ++i) {
      if (!hosts.readable_replica(i, now)) continue;
      c->on_replica = true;
      c->wait_pool = ctx.pools->on_host(c->pool, uint16_t(i), cfg);
      return c->wait_pool;
    }
  }
  if (primary < 0) return nullptr;
  hosts.count_routed(size_t(primary));
  c->wait_pool = ctx.pools->on_host(c->pool, uint16_t(primary), cfg);
  return c->wait_pool;
}

void note_lease_end(const SharedContext& ctx, const config::Config& cfg, Client* c, Nanos now) {
  // A lease proven read-only wrote nothing, wherever it ran.
  if (!ctx.hosts || c->on_replica || c->lease_read_only || !split_enabled(ctx, cfg, c) ||
      !cfg.routing.read_your_writes)
    return;
  c->ryw_since = now;
  c->ryw_lsn = 0;
}

bool lease_host_ok(SharedContext& ctx, const Client* c, const pool::Backend* b) {
  if (!ctx.hosts || c->on_replica) return true;
  const uint16_t host = b->pool->key().host;
  // PostgreSQL 14+ reports in_hot_standby at login (and its change at promotion): a backend in
  // recovery is never a primary connection, whatever the last health check said. The host
  // loses the role now, not at its next check.
  for (const auto& [name, value] : b->params)
    if (name == "in_hot_standby" && value == "on") {
      ctx.hosts->drop_primary(host, "has a connection that reports in_hot_standby = on");
      return c->state == ClientState::kWelcome;  // only the server's parameters are needed
    }
  return c->state == ClientState::kWelcome || int(host) == ctx.hosts->primary();
}

std::string no_primary_message(const SharedContext& ctx) {
  std::string m = "no primary database host is known right now";
  if (ctx.hosts) {
    m += " (";
    for (const auto& h : ctx.hosts->snapshot(monotonic_now())) {
      if (m.back() != '(') m += ", ";
      m += h.address + " " + pool::to_string(h.role) + (h.banned ? " banned" : "");
    }
    m += ")";
  }
  return m;
}

}  // namespace helios::proxy
