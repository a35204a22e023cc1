#include "ops/admin_router.h"

#include <openssl/crypto.h>

#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>

#include "ops/admin_json.h"
#include "ops/metrics_families.h"

namespace helios::ops {
namespace {

using nlohmann::json;

constexpr const char* kJson = "application/json";

// Tenant names and paths are client-supplied bytes: never let invalid UTF-8 throw.
AdminResponse reply(int status, const json& body) {
  AdminResponse res;
  res.status = status;
  res.content_type = kJson;
  res.body = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  return res;
}

bool is_public(const std::string& path) {
  return path == "/health" || path == "/ready";
}

bool is_mutation(const std::string& path) {
  return path == "/api/v1/reload" || path == "/api/v1/drain";
}

bool is_read(const std::string& method) {
  return method == "GET" || method == "HEAD";
}

// nullopt: the request may go on; else the refusal to send.
std::optional<AdminResponse> refuse_unauthorized(AdminTarget& target, const AdminRequest& req) {
  if (is_public(req.path)) return std::nullopt;
  if (is_mutation(req.path) && req.method != "POST") {
    AdminResponse res = reply(405, json{{"error", req.path + " takes POST only"}});
    res.headers.emplace_back("Allow", "POST");
    return res;
  }
  const bool mutating = !is_read(req.method);
  const std::string token = mutating ? target.mutation_token() : target.admin_token();
  if (mutating && token.empty())
    return reply(403, json{{"error", "no admin token is available: mutations are refused"}});
  if (bearer_matches(req.authorization, token)) return std::nullopt;
  AdminResponse res =
      reply(401, json{{"error", mutating ? "unauthorized: send Authorization: Bearer <admin "
                                           "token> ([admin] token, or the generated token file)"
                                         : "unauthorized: send Authorization: Bearer <[admin] "
                                           "token>"}});
  res.headers.emplace_back("WWW-Authenticate", "Bearer");
  return res;
}

AdminResponse tenants_stats(AdminTarget& target, const AdminRequest& req) {
  size_t limit = kDefaultAdminTenantLimit;
  if (auto it = req.params.find("limit"); it != req.params.end()) {
    const std::string& v = it->second;
    size_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size())
      return reply(400, json{{"error", "limit must be a non-negative integer"}});
    limit = n;
  }
  return reply(200, tenants_stats_json(target.snapshot(), limit));
}

AdminResponse read_endpoint(AdminTarget& target, const AdminRequest& req) {
  const std::string& p = req.path;
  if (p == "/health") return reply(200, json{{"status", "ok"}, {"draining", target.draining()}});
  if (p == "/ready") {
    const bool draining = target.draining();
    const bool ready = target.ready() && !draining;
    return reply(ready ? 200 : 503, json{{"ready", ready}, {"draining", draining}});
  }
  if (p == "/pool/stats") return reply(200, tutorial_pool_stats_json(target.snapshot()));
  if (p == "/api/v1/pool/stats") {
    ProxySnapshot s = target.snapshot();
    return reply(200, pool_stats_json(s, target.quota_rejections_1h(s)));
  }
  if (p == "/api/v1/tenants/stats") return tenants_stats(target, req);
  if (p == "/api/v1/status") return reply(200, status_json(target.snapshot()));
  if (p == "/api/v1/fleet") return reply(200, fleet_json(target.snapshot()));
  if (p == "/api/v1/hosts") return reply(200, hosts_json(target.snapshot()));
  if (p == "/metrics") {
    AdminResponse res;
    res.content_type = "text/plain; version=0.0.4";
    res.body = serialize_metrics(build_metric_families(target.snapshot()));
    return res;
  }
  return reply(404, json{{"error", "no such endpoint: " + req.method + " " + req.path}});
}

}  // namespace

bool bearer_matches(const std::string& authorization, const std::string& token) {
  static constexpr std::string_view kPrefix = "Bearer ";
  if (token.empty()) return true;
  if (authorization.size() != kPrefix.size() + token.size()) return false;
  if (authorization.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  return CRYPTO_memcmp(authorization.data() + kPrefix.size(), token.data(), token.size()) == 0;
}

AdminResponse handle_admin_request(AdminTarget& target, const AdminRequest& req) {
  if (auto refusal = refuse_unauthorized(target, req)) return *std::move(refusal);
  if (is_read(req.method)) return read_endpoint(target, req);
  if (req.method == "POST" && req.path == "/api/v1/reload") {
    ReloadSample r = target.reload();
    json body{{"ok", r.ok}, {"took_ms", round_ms(double(r.took) / 1e6)}};
    if (!r.ok) body["error"] = r.error;
    return reply(r.ok ? 200 : 422, body);
  }
  if (req.method == "POST" && req.path == "/api/v1/drain") {
    target.drain();
    return reply(202, json{{"draining", true}});
  }
  return reply(404, json{{"error", "no such endpoint: " + req.method + " " + req.path}});
}

}  // namespace helios::ops
