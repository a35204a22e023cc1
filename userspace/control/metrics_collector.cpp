#include "control/metrics_collector.h"

#include "control/metrics_families.h"

namespace helios::control {

std::vector<prometheus::MetricFamily> MetricsCollector::Collect() const {
  return build_metric_families(snapshot_());
}

}  // namespace helios::control
