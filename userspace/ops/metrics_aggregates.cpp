// The aggregates shared by /metrics and the admin API (declared in metrics_snapshot.h): pure
// functions of a ProxySnapshot, apart from take_snapshot() so they link without the server.
#include <algorithm>

#include "ops/metrics_snapshot.h"

namespace helios::ops {

AtomicHistogram::Snapshot merged_acquire_latency(const ProxySnapshot& s) {
  AtomicHistogram::Snapshot out;
  for (const PoolSample& p : s.pools) {
    const auto& h = p.acquire_latency;
    if (out.buckets.empty()) {
      out.bounds = h.bounds;
      out.buckets.assign(h.buckets.size(), 0);
    }
    if (h.bounds != out.bounds || h.buckets.size() != out.buckets.size()) continue;
    for (size_t i = 0; i < h.buckets.size(); ++i) out.buckets[i] += h.buckets[i];
    out.count += h.count;
    out.sum_seconds += h.sum_seconds;
  }
  return out;
}

uint64_t total_quota_rejections(const ProxySnapshot& s) {
  uint64_t n = 0;
  for (const TenantSample& t : s.tenants)
    for (uint64_t r : t.stats.rejections) n += r;
  return n;
}

int64_t effective_max_connections(const TenantSample& t, const ProxySnapshot& s) {
  int64_t limit = s.quotas_enabled ? int64_t(t.stats.limits.max_connections) : 0;
  if (limit > 0 && (s.max_client_connections <= 0 || limit < s.max_client_connections))
    return limit;
  return s.max_client_connections > 0 ? s.max_client_connections : limit;
}

bool qps_limited(const TenantSample& t, const ProxySnapshot& s) {
  return s.quotas_enabled && t.stats.limits.max_qps > 0;
}

double effective_max_qps(const TenantSample& t, const ProxySnapshot& s) {
  return qps_limited(t, s) ? t.stats.limits.max_qps : double(kUnlimitedQps);
}

}  // namespace helios::ops
