// The Prometheus metric families of a ProxySnapshot (see docs/operations.md for the list).
//
// Labels: pool metrics carry pool and pool_mode; tenant metrics carry tenant_id and pool_mode.
// Tenant cardinality is bounded by [metrics] max_tenant_labels: the first N tenants the proxy
// saw (registry order, stable for the life of the process, so counters stay monotonic) get their
// own tenant_id; every later tenant, and the registry's overflow state, is summed under
// tenant_id="other".
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <vector>

#include "ops/metrics_snapshot.h"

namespace helios::ops {

// Building blocks of the families (metrics_families.cpp), shared with metrics_fleet.cpp.
using MetricLabels = std::vector<prometheus::ClientMetric::Label>;
prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type);
void add_gauge(prometheus::MetricFamily& f, MetricLabels labels, double v);
void add_counter(prometheus::MetricFamily& f, MetricLabels labels, double v);

// [fleet] families (metrics_fleet.cpp); none without [fleet].
void fleet_families(const ProxySnapshot& s, std::vector<prometheus::MetricFamily>& out);

inline constexpr const char* kOtherTenantLabel = "other";

std::vector<prometheus::MetricFamily> build_metric_families(const ProxySnapshot& s);

// The tenant_id label each tenant of s.tenants is reported under (same order).
std::vector<std::string> tenant_labels(const ProxySnapshot& s);

// Prometheus text exposition format of the families (what /metrics serves).
std::string serialize_metrics(const std::vector<prometheus::MetricFamily>& families);

}  // namespace helios::ops
