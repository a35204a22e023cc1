#include "ops/metrics_endpoint.h"

#include "ops/metrics_families.h"

namespace helios::ops {

MetricsEndpoint::MetricsEndpoint(std::function<ProxySnapshot()> snapshot)
    : snapshot_(std::move(snapshot)) {
  httplib::Server& http = endpoint_.http();
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(serialize_metrics(build_metric_families(snapshot_())),
                    "text/plain; version=0.0.4");
  });
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) res.set_content("see /metrics\n", "text/plain");
  });
}

MetricsEndpoint::~MetricsEndpoint() {
  stop();
}

}  // namespace helios::ops
