#include "control/admin_api.h"

#include <httplib.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/log.h"
#include "control/admin_json.h"
#include "control/metrics_families.h"

namespace helios::control {
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

}  // namespace

bool bearer_matches(const std::string& authorization, const std::string& token) {
  static constexpr std::string_view kPrefix = "Bearer ";
  if (token.empty()) return true;
  if (authorization.size() != kPrefix.size() + token.size()) return false;
  if (authorization.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  return CRYPTO_memcmp(authorization.data() + kPrefix.size(), token.data(), token.size()) == 0;
}

AdminApi::AdminApi(AdminTarget& target)
    : target_(target), http_(std::make_unique<httplib::Server>()) {
  // A few threads are plenty for probes, scrapes and heliosctl.
  http_->new_task_queue = [] { return new httplib::ThreadPool(4); };
  // SO_REUSEADDR only: no SO_REUSEPORT, so a successor process during an online restart does
  // not share (and split) the admin port with the process it replaces.
  http_->set_socket_options([](socket_t sock) {
    int one = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  });
  http_->set_read_timeout(5, 0);
  http_->set_write_timeout(5, 0);
  http_->set_keep_alive_timeout(5);
  routes();
}

AdminApi::~AdminApi() {
  stop();
}

Status AdminApi::bind(const std::string& host, uint16_t port) {
  errno = 0;
  if (port == 0) {
    int p = http_->bind_to_any_port(host);
    if (p <= 0) return Error::from_errno("admin API: cannot bind " + host + ":0");
    port_ = uint16_t(p);
    return {};
  }
  if (!http_->bind_to_port(host, port)) {
    int e = errno ? errno : EADDRINUSE;
    return Error{e, "admin API: cannot listen on " + host + ":" + std::to_string(port) + ": " +
                        std::strerror(e)};
  }
  port_ = port;
  return {};
}

void AdminApi::serve() {
  serving_.store(true);
  if (!stop_requested_.load()) http_->listen_after_bind();
  serving_.store(false);
}

void AdminApi::stop() {
  stop_requested_.store(true);
  // httplib's stop() does nothing until listen_after_bind() has started: wait for it (bounded)
  // when serve() is on its way, else the listener would never see the stop.
  for (int i = 0; i < 2000 && serving_.load() && !http_->is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  http_->stop();
}

void AdminApi::routes() {
  http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (is_public(req.path)) return httplib::Server::HandlerResponse::Unhandled;
    std::string token = target_.admin_token();
    if (bearer_matches(req.get_header_value("Authorization"), token))
      return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    reply(res, 401, json{{"error", "unauthorized: send Authorization: Bearer <[admin] token>"}});
    return httplib::Server::HandlerResponse::Handled;
  });
  http_->set_exception_handler(
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
  http_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty())
      reply(res, 404, json{{"error", "no such endpoint: " + req.method + " " + req.path}});
  });

  http_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, json{{"status", "ok"}, {"draining", target_.draining()}});
  });
  http_->Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
    bool draining = target_.draining();
    bool ready = target_.ready() && !draining;
    reply(res, ready ? 200 : 503, json{{"ready", ready}, {"draining", draining}});
  });
  http_->Get("/pool/stats", [this](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, tutorial_pool_stats_json(target_.snapshot()));
  });
  http_->Get("/api/v1/pool/stats", [this](const httplib::Request&, httplib::Response& res) {
    ProxySnapshot s = target_.snapshot();
    reply(res, 200, pool_stats_json(s, target_.quota_rejections_1h(s)));
  });
  http_->Get("/api/v1/tenants/stats", [this](const httplib::Request& req, httplib::Response& res) {
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
  http_->Get("/api/v1/status", [this](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, status_json(target_.snapshot()));
  });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(serialize_metrics(build_metric_families(target_.snapshot())),
                    "text/plain; version=0.0.4");
  });
  http_->Post("/api/v1/reload", [this](const httplib::Request&, httplib::Response& res) {
    ReloadSample r = target_.reload();
    json body{{"ok", r.ok}, {"took_ms", round_ms(double(r.took) / 1e6)}};
    if (!r.ok) body["error"] = r.error;
    reply(res, r.ok ? 200 : 422, body);
  });
  http_->Post("/api/v1/drain", [this](const httplib::Request&, httplib::Response& res) {
    target_.drain();
    reply(res, 202, json{{"draining", true}});
  });
}

}  // namespace helios::control
