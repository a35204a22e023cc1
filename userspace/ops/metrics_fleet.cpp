// [fleet] metrics: degraded, live instances, renewals, failures, this instance's shares, and
// cancels forwarded, received and dropped.
#include "ops/metrics_families.h"

namespace helios::ops {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

const char* limit_name(char kind) {
  switch (kind) {
    case 'c':
      return "max_connections";
    case 'a':
      return "max_active";
    case 'q':
      return "max_qps";
    default:
      return "pool_max_connections";  // tenant_id is then the pool's name
  }
}

}  // namespace

void fleet_families(const ProxySnapshot& s, std::vector<MetricFamily>& out) {
  if (!s.fleet) return;
  const fleet::FleetView& v = *s.fleet;
  auto degraded =
      family("helios_proxy_fleet_degraded",
             "1 while Redis cannot be reached and static shares apply", MetricType::Gauge);
  add_gauge(degraded, {}, v.degraded ? 1 : 0);
  auto live = family("helios_proxy_fleet_instances",
                     "Instances alive at the last renewal (this one included)", MetricType::Gauge);
  add_gauge(live, {}, double(v.live_instances));
  auto renewals = family("helios_proxy_fleet_renewals_total", "Lease renewals that reached Redis",
                         MetricType::Counter);
  add_counter(renewals, {}, double(v.renewals));
  auto failures = family("helios_proxy_fleet_renewal_failures_total",
                         "Lease renewals that failed (Redis down, timeout)", MetricType::Counter);
  add_counter(failures, {}, double(v.failures));
  auto share = family("helios_proxy_fleet_share",
                      "This instance's slice of a tenant's fleet-wide limit", MetricType::Gauge);
  auto limit = family("helios_proxy_fleet_limit", "A tenant's fleet-wide limit", MetricType::Gauge);
  size_t n = 0;
  for (const fleet::ShareView& sv : v.shares) {
    if (n++ >= size_t(std::max<int64_t>(0, s.max_tenant_labels)) * 3) break;
    MetricLabels l{{"tenant_id", sv.tenant}, {"limit", limit_name(sv.limit_kind)}};
    add_gauge(share, l, sv.share);
    add_gauge(limit, l, sv.limit);
  }
  auto forwarded =
      family("helios_proxy_fleet_cancels_forwarded_total",
             "CancelRequests written to the instance owning the session", MetricType::Counter);
  add_counter(forwarded, {}, double(v.cancels.forwarded));
  auto received = family("helios_proxy_fleet_cancels_received_total",
                         "CancelRequests another instance forwarded here", MetricType::Counter);
  add_counter(received, {}, double(v.cancels.received));
  auto dropped = family("helios_proxy_fleet_cancels_dropped_total",
                        "CancelRequests for another instance not forwarded (reason: unknown_peer, "
                        "busy, unreachable)",
                        MetricType::Counter);
  add_counter(dropped, {{"reason", "unknown_peer"}}, double(v.cancels.unknown_peer));
  add_counter(dropped, {{"reason", "busy"}}, double(v.cancels.busy));
  add_counter(dropped, {{"reason", "unreachable"}}, double(v.cancels.unreachable));
  for (auto* f :
       {&degraded, &live, &renewals, &failures, &share, &limit, &forwarded, &received, &dropped})
    out.push_back(std::move(*f));
}

}  // namespace helios::ops
