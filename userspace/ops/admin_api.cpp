#include "ops/admin_api.h"

#include <httplib.h>
#include <openssl/crypto.h>

#include <charconv>

#include "common/log.h"
#include "ops/admin_json.h"
#include "ops/metrics_families.h"

namespace helios::ops {
namespace {

using nlohmann::json;

constexpr const char* kJson = "application/json";

// Tenant names are client-supplied bytes: never let invalid UTF-8 throw.
std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), kJson);
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

}  // namespace

bool bearer_matches(const std::string& authorization, const std::string& token) {
  static constexpr std::string_view kPrefix = "Bearer ";
  if (token.empty()) return true;
  if (authorization.size() != kPrefix.size() + token.size()) return false;
  if (authorization.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  return CRYPTO_memcmp(authorization.data() + kPrefix.size(), token.data(), token.size()) == 0;
}

AdminApi::AdminApi(AdminTarget& target) : target_(target) {
  routes();
}

AdminApi::~AdminApi() {
  stop();
}

void AdminApi::routes() {
  httplib::Server& http = endpoint_.http();
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    using R = httplib::Server::HandlerResponse;
    if (is_public(req.path)) return R::Unhandled;
    if (is_mutation(req.path) && req.method != "POST") {
      res.set_header("Allow", "POST");
      reply(res, 405, json{{"error", req.path + " takes POST only"}});
      return R::Handled;
    }
    const bool mutating = !is_read(req.method);
    std::string token = mutating ? target_.mutation_token() : target_.admin_token();
    if (mutating && token.empty()) {
      reply(res, 403, json{{"error", "no admin token is available: mutations are refused"}});
      return R::Handled;
    }
    if (bearer_matches(req.get_header_value("Authorization"), token)) return R::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    reply(res, 401,
          json{{"error", mutating ? "unauthorized: send Authorization: Bearer <admin token> "
                                    "([admin] token, or the generated token file)"
                                  : "unauthorized: send Authorization: Bearer <[admin] token>"}});
    return R::Handled;
  });
  http.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        log::error("admin API {} {}: {}", req.method, req.path, what);
        reply(res, 500, json{{"error", what}});
      });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty())
      reply(res, 404, json{{"error", "no such endpoint: " + req.method + " " + req.path}});
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, json{{"status", "ok"}, {"draining", target_.draining()}});
  });
  http.Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
    bool draining = target_.draining();
    bool ready = target_.ready() && !draining;
    reply(res, ready ? 200 : 503, json{{"ready", ready}, {"draining", draining}});
  });
  http.Get("/pool/stats", [this](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, tutorial_pool_stats_json(target_.snapshot()));
  });
  http.Get("/api/v1/pool/stats", [this](const httplib::Request&, httplib::Response& res) {
    ProxySnapshot s = target_.snapshot();
    reply(res, 200, pool_stats_json(s, target_.quota_rejections_1h(s)));
  });
  http.Get("/api/v1/tenants/stats", [this](const httplib::Request& req, httplib::Response& res) {
    size_t limit = kDefaultTenantLimit;
    if (req.has_param("limit")) {
      std::string v = req.get_param_value("limit");
      size_t n = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || p != v.data() + v.size()) {
        reply(res, 400, json{{"error", "limit must be a non-negative integer"}});
        return;
      }
      limit = n;
    }
    reply(res, 200, tenants_stats_json(target_.snapshot(), limit));
  });
  http.Get("/api/v1/status", [this](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, status_json(target_.snapshot()));
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(serialize_metrics(build_metric_families(target_.snapshot())),
                    "text/plain; version=0.0.4");
  });
  http.Post("/api/v1/reload", [this](const httplib::Request&, httplib::Response& res) {
    ReloadSample r = target_.reload();
    json body{{"ok", r.ok}, {"took_ms", round_ms(double(r.took) / 1e6)}};
    if (!r.ok) body["error"] = r.error;
    reply(res, r.ok ? 200 : 422, body);
  });
  http.Post("/api/v1/drain", [this](const httplib::Request&, httplib::Response& res) {
    target_.drain();
    reply(res, 202, json{{"draining", true}});
  });
}

}  // namespace helios::ops
