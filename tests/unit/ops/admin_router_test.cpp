// The admin API's request handling without sockets (admin_router.h): the token rules and the
// answers for every kind of request. The HTTP layer on top is covered by admin_api_test.cpp.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "ops/admin_router.h"

using namespace helios;
using namespace helios::config;
using namespace helios::ops;
using namespace helios::proxy;

namespace {

class Target final : public AdminTarget {
 public:
  std::string token, generated = "g3n";
  int reloads = 0, drains = 0;
  ProxySnapshot snapshot() override { return {}; }
  bool ready() override { return true; }
  bool draining() override { return drains > 0; }
  uint64_t quota_rejections_1h(const ProxySnapshot&) override { return 0; }
  ReloadSample reload() override {
    ++reloads;
    return {true, false, "proxy.toml:3: bad", 1000};
  }
  void drain() override { ++drains; }
  std::string admin_token() override { return token; }
  std::string mutation_token() override { return token.empty() ? generated : token; }
};

AdminResponse call(Target& t, std::string method, std::string path, std::string auth = "") {
  return handle_admin_request(t, AdminRequest{std::move(method), std::move(path), {}, auth});
}

std::string header(const AdminResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

}  // namespace

TEST_CASE("mutations need POST and the mutation token; the target is not touched otherwise") {
  Target t;
  AdminResponse r = call(t, "POST", "/api/v1/drain");
  CHECK(r.status == 401);
  CHECK(header(r, "WWW-Authenticate") == "Bearer");
  CHECK(call(t, "POST", "/api/v1/drain", "Bearer wrong").status == 401);
  r = call(t, "GET", "/api/v1/drain", "Bearer g3n");
  CHECK(r.status == 405);
  CHECK(header(r, "Allow") == "POST");
  CHECK(t.drains == 0);
  CHECK(call(t, "POST", "/api/v1/drain", "Bearer g3n").status == 202);
  CHECK(t.drains == 1);
  r = call(t, "POST", "/api/v1/reload", "Bearer g3n");
  CHECK(r.status == 422);
  CHECK(nlohmann::json::parse(r.body)["error"] == "proxy.toml:3: bad");
  t.generated.clear();
  CHECK(call(t, "POST", "/api/v1/reload", "Bearer ").status == 403);
  CHECK(t.reloads == 1);
}

TEST_CASE("with a configured token only /health and /ready answer without it") {
  Target t;
  t.token = "t0k";
  CHECK(call(t, "GET", "/health").status == 200);
  CHECK(call(t, "HEAD", "/ready").status == 200);
  CHECK(call(t, "GET", "/metrics").status == 401);
  CHECK(call(t, "GET", "/api/v1/status", "Bearer g3n").status == 401);
  AdminResponse r = call(t, "GET", "/metrics", "Bearer t0k");
  CHECK(r.status == 200);
  CHECK(r.content_type.starts_with("text/plain"));
}

TEST_CASE("unknown endpoints and bad parameters get JSON errors") {
  Target t;
  AdminResponse r = call(t, "GET", "/nope\xff");
  CHECK(r.status == 404);
  CHECK(r.content_type == "application/json");
  CHECK(nlohmann::json::accept(r.body));  // invalid UTF-8 in the path is replaced, not thrown
  CHECK(call(t, "POST", "/health", "Bearer g3n").status == 404);
  AdminRequest bad{"GET", "/api/v1/tenants/stats", {{"limit", "-1"}}, ""};
  CHECK(handle_admin_request(t, bad).status == 400);
}
