// [fleet] metrics: degraded, live instances, renewals, failures, and this instance's shares.
#include "ops/metrics_families.h"

namespace helios::ops {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily make(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void add(MetricFamily& f, std::vector<ClientMetric::Label> labels, double v) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter)
    m.counter.value = v;
  else
    m.gauge.value = v;
  f.metric.push_back(std::move(m));
}

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
      make("helios_proxy_fleet_degraded", "1 while Redis cannot be reached and static shares apply",
           MetricType::Gauge);
  add(degraded, {}, v.degraded ? 1 : 0);
  auto live = make("helios_proxy_fleet_instances",
                   "Instances alive at the last renewal (this one included)", MetricType::Gauge);
  add(live, {}, double(v.live_instances));
  auto renewals = make("helios_proxy_fleet_renewals_total", "Lease renewals that reached Redis",
                       MetricType::Counter);
  add(renewals, {}, double(v.renewals));
  auto failures = make("helios_proxy_fleet_renewal_failures_total",
                       "Lease renewals that failed (Redis down, timeout)", MetricType::Counter);
  add(failures, {}, double(v.failures));
  auto share = make("helios_proxy_fleet_share",
                    "This instance's slice of a tenant's fleet-wide limit", MetricType::Gauge);
  auto limit = make("helios_proxy_fleet_limit", "A tenant's fleet-wide limit", MetricType::Gauge);
  size_t n = 0;
  for (const fleet::ShareView& sv : v.shares) {
    if (n++ >= size_t(std::max<int64_t>(0, s.max_tenant_labels)) * 3) break;
    std::vector<ClientMetric::Label> l{{"tenant_id", sv.tenant},
                                       {"limit", limit_name(sv.limit_kind)}};
    add(share, l, sv.share);
    add(limit, l, sv.limit);
  }
  for (auto* f : {&degraded, &live, &renewals, &failures, &share, &limit})
    out.push_back(std::move(*f));
}

}  // namespace helios::ops
