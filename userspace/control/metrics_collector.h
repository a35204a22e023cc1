// The prometheus-cpp Collectable behind the exposer: builds the metric families from a fresh
// ProxySnapshot each time Prometheus scrapes, so the data path never touches a metric object.
#pragma once

#include <prometheus/collectable.h>

#include <functional>
#include <vector>

#include "control/metrics_snapshot.h"

namespace helios::control {

class MetricsCollector final : public prometheus::Collectable {
 public:
  explicit MetricsCollector(std::function<ProxySnapshot()> snapshot)
      : snapshot_(std::move(snapshot)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::function<ProxySnapshot()> snapshot_;
};

}  // namespace helios::control
