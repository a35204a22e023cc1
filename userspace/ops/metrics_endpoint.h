// The Prometheus endpoint on [metrics] prometheus_address:prometheus_port: GET /metrics in the
// text format, built from a fresh ProxySnapshot per scrape (the same text as the admin API's
// /metrics). Served by an HttpEndpoint, so idle connections do not stop scrapes (the
// prometheus-cpp exposer it replaces had 2 civetweb threads that two idle connections held).
#pragma once

#include <functional>
#include <string>

#include "common/result.h"
#include "ops/http_endpoint.h"
#include "ops/metrics_snapshot.h"

namespace helios::ops {

class MetricsEndpoint {
 public:
  explicit MetricsEndpoint(std::function<ProxySnapshot()> snapshot);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  Status bind(const std::string& host, uint16_t port) { return endpoint_.bind(host, port); }
  uint16_t port() const { return endpoint_.port(); }
  void serve() { endpoint_.serve(); }
  void stop() { endpoint_.stop(); }

 private:
  std::function<ProxySnapshot()> snapshot_;
  HttpEndpoint endpoint_{"metrics"};
};

}  // namespace helios::ops
