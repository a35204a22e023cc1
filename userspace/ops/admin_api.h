// The admin HTTP API (cpp-httplib, JSON by nlohmann-json):
//
//   GET  /health               200 while the process runs
//   GET  /ready                200 when the proxy serves clients; 503 before, and while draining
//   GET  /pool/stats           tutorial fields (seed 001)
//   GET  /api/v1/pool/stats    monitoring-script fields (seed 000) + per-pool details
//   GET  /api/v1/tenants/stats[?limit=N]   per-tenant stats (default limit 1000)
//   GET  /api/v1/status        summary for heliosctl status
//   GET  /metrics              the Prometheus text format (same as the metrics endpoint)
//   POST /api/v1/reload        200 {ok,took_ms} | 422 {ok:false,error:"file:line: ..."}
//   POST /api/v1/drain         202 {draining:true}
//
// Authentication ("Authorization: Bearer <token>", else 401):
//   - the mutating endpoints (POST) always need it: the [admin] token when one is configured,
//     else the token the proxy generated at start (control/admin_token.h). A browser's
//     cross-site form post cannot set that header, and no CORS header is ever sent.
//   - with an [admin] token configured, every other request except /health and /ready needs it
//     too; without one, the read-only endpoints are open (keep the API on loopback then).
// Mutations are POST only (another method gets 405). Tokens are read per request, so a reload
// that changes the [admin] token applies at once. The listen address itself needs a restart.
// The handling itself is handle_admin_request() (admin_router.h): this class carries it over
// HTTP.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/result.h"
#include "ops/admin_router.h"
#include "ops/http_endpoint.h"
#include "ops/metrics_snapshot.h"

namespace helios::ops {

class AdminApi {
 public:
  static constexpr size_t kDefaultTenantLimit = kDefaultAdminTenantLimit;

  explicit AdminApi(AdminTarget& target);
  ~AdminApi();
  AdminApi(const AdminApi&) = delete;
  AdminApi& operator=(const AdminApi&) = delete;

  // Binds the listening socket (port 0: any free port). Fails if the address is in use.
  Status bind(const std::string& host, uint16_t port) { return endpoint_.bind(host, port); }
  uint16_t port() const { return endpoint_.port(); }
  // Serves until stop(); call on a thread of its own after bind().
  void serve() { endpoint_.serve(); }
  void stop() { endpoint_.stop(); }

 private:
  void routes();

  AdminTarget& target_;
  HttpEndpoint endpoint_{"admin API"};
};

}  // namespace helios::ops
