#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "ops/admin_api.h"

using namespace helios;
using namespace helios::config;
using namespace helios::ops;
using nlohmann::json;

namespace {

class FakeTarget final : public AdminTarget {
 public:
  ProxySnapshot snap;
  std::string token;
  ReloadSample next_reload{true, true, "", 1500 * kNanosPerMicro};
  std::atomic<int> reloads{0}, drains{0}, snapshots{0};
  std::atomic<bool> is_ready{true}, is_draining{false};

  ProxySnapshot snapshot() override {
    ++snapshots;
    return snap;
  }
  bool ready() override { return is_ready; }
  bool draining() override { return is_draining; }
  uint64_t quota_rejections_1h(const ProxySnapshot&) override { return 7; }
  ReloadSample reload() override {
    ++reloads;
    return next_reload;
  }
  void drain() override {
    ++drains;
    is_draining = true;
  }
  std::string admin_token() override { return token; }
  std::string generated = "g3n3rated";
  std::string mutation_token() override { return token.empty() ? generated : token; }
};

const httplib::Headers kGenerated{{"Authorization", "Bearer g3n3rated"}};

// An AdminApi on a free loopback port, served on a thread for the test's lifetime.
struct Served {
  FakeTarget target;
  AdminApi api{target};
  std::thread thread;
  Served() {
    target.snap.mode = PoolMode::kSession;
    target.snap.max_client_connections = 100;
    Status s = api.bind("127.0.0.1", 0);
    REQUIRE(s.ok());
    thread = std::thread([this] { api.serve(); });
  }
  ~Served() {
    api.stop();
    thread.join();
  }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", api.port());
    c.set_connection_timeout(2, 0);
    c.set_read_timeout(5, 0);
    return c;
  }
};

}  // namespace

TEST_CASE("health, readiness and the stats endpoints answer JSON") {
  Served s;
  auto c = s.client();
  auto r = c.Get("/health");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(json::parse(r->body)["status"] == "ok");
  r = c.Get("/ready");
  REQUIRE(r);
  CHECK(r->status == 200);
  r = c.Get("/pool/stats");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "application/json");
  CHECK(json::parse(r->body)["mode"] == "session");
  r = c.Get("/api/v1/pool/stats");
  REQUIRE(r);
  CHECK(json::parse(r->body)["quota_rejections_1h"] == 7);
  r = c.Get("/api/v1/tenants/stats");
  REQUIRE(r);
  CHECK(json::parse(r->body)["tenants"].is_array());
  r = c.Get("/api/v1/status");
  REQUIRE(r);
  CHECK(json::parse(r->body)["max_client_connections"] == 100);
  r = c.Get("/metrics");
  REQUIRE(r);
  CHECK(r->body.find("helios_proxy_client_connections_max 100") != std::string::npos);
}

TEST_CASE("/ready is 503 before the proxy is ready and while it drains") {
  Served s;
  auto c = s.client();
  s.target.is_ready = false;
  auto r = c.Get("/ready");
  REQUIRE(r);
  CHECK(r->status == 503);
  s.target.is_ready = true;
  s.target.is_draining = true;
  r = c.Get("/ready");
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(json::parse(r->body)["draining"] == true);
  // /health stays 200: the process is alive.
  r = c.Get("/health");
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("reload: 200 with took_ms, or 422 with the config error") {
  Served s;
  auto c = s.client();
  auto r = c.Post("/api/v1/reload", kGenerated, "", "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  json j = json::parse(r->body);
  CHECK(j["ok"] == true);
  CHECK(j["took_ms"].get<double>() == doctest::Approx(1.5));
  s.target.next_reload = {true, false, "proxy.toml:12: max_connections: must be > 0", 0};
  r = c.Post("/api/v1/reload", kGenerated, "", "application/json");
  REQUIRE(r);
  CHECK(r->status == 422);
  j = json::parse(r->body);
  CHECK(j["ok"] == false);
  CHECK(j["error"] == "proxy.toml:12: max_connections: must be > 0");
  CHECK(s.target.reloads == 2);
  // GET is not a way to reload, even with the token.
  r = c.Get("/api/v1/reload", kGenerated);
  REQUIRE(r);
  CHECK(r->status == 405);
  CHECK(r->get_header_value("Allow") == "POST");
  CHECK(s.target.reloads == 2);
}

TEST_CASE("drain: 202 and the proxy is told once per request") {
  Served s;
  auto c = s.client();
  auto r = c.Post("/api/v1/drain", kGenerated, "", "application/json");
  REQUIRE(r);
  CHECK(r->status == 202);
  CHECK(s.target.drains == 1);
}

TEST_CASE(
    "without a configured token, reads are open but reload and drain need the generated one") {
  Served s;
  auto c = s.client();
  CHECK(c.Get("/api/v1/status")->status == 200);
  CHECK(c.Get("/metrics")->status == 200);
  auto r = c.Post("/api/v1/reload");
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(r->get_header_value("WWW-Authenticate") == "Bearer");
  r = c.Post("/api/v1/drain", httplib::Headers{{"Authorization", "Bearer wrong"}}, "",
             "application/json");
  REQUIRE(r);
  CHECK(r->status == 401);
  // What a cross-site HTML form can send: a urlencoded body, cookies, an Origin; no header.
  r = c.Post("/api/v1/drain",
             httplib::Headers{{"Origin", "http://evil.example"}, {"Cookie", "a=b"}}, "x=1",
             "application/x-www-form-urlencoded");
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK_FALSE(r->has_header("Access-Control-Allow-Origin"));
  CHECK(s.target.reloads == 0);
  CHECK(s.target.drains == 0);
  // A CORS preflight gets no CORS headers either.
  r = c.Options("/api/v1/drain", httplib::Headers{{"Origin", "http://evil.example"},
                                                  {"Access-Control-Request-Method", "POST"}});
  REQUIRE(r);
  CHECK(r->status != 200);
  CHECK_FALSE(r->has_header("Access-Control-Allow-Origin"));
  CHECK_FALSE(r->has_header("Access-Control-Allow-Headers"));
  CHECK(s.target.drains == 0);
  // With no token at all (the file could not be made), mutations are refused outright.
  s.target.generated.clear();
  r = c.Post("/api/v1/drain", httplib::Headers{{"Authorization", "Bearer "}}, "",
             "application/json");
  REQUIRE(r);
  CHECK(r->status == 403);
  CHECK(s.target.drains == 0);
}

TEST_CASE("with a token, every endpoint but /health and /ready needs the bearer token") {
  Served s;
  s.target.token = "s3cret";
  auto c = s.client();
  for (const char* path : {"/pool/stats", "/api/v1/pool/stats", "/api/v1/tenants/stats",
                           "/api/v1/status", "/metrics"}) {
    auto r = c.Get(path);
    REQUIRE(r);
    CHECK_MESSAGE(r->status == 401, path);
  }
  auto r = c.Post("/api/v1/reload");
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(s.target.reloads == 0);
  r = c.Post("/api/v1/drain", httplib::Headers{{"Authorization", "Bearer wrong!"}}, "",
             "application/json");
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(s.target.drains == 0);
  CHECK(c.Get("/health")->status == 200);
  CHECK(c.Get("/ready")->status == 200);
  r = c.Get("/api/v1/status", httplib::Headers{{"Authorization", "Bearer s3cret"}});
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("unknown paths and bad parameters get JSON errors") {
  Served s;
  auto c = s.client();
  auto r = c.Get("/nope");
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(json::parse(r->body)["error"].get<std::string>().find("/nope") != std::string::npos);
  r = c.Get("/api/v1/tenants/stats?limit=abc");
  REQUIRE(r);
  CHECK(r->status == 400);
  r = c.Get("/api/v1/tenants/stats?limit=0");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(json::parse(r->body)["tenants"].empty());
}

TEST_CASE("binding a port that is in use fails with EADDRINUSE") {
  Served s;
  FakeTarget other;
  AdminApi second(other);
  Status st = second.bind("127.0.0.1", s.api.port());
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == EADDRINUSE);
}

TEST_CASE("bearer_matches") {
  CHECK(bearer_matches("", ""));
  CHECK(bearer_matches("anything", ""));
  CHECK(bearer_matches("Bearer abc", "abc"));
  CHECK_FALSE(bearer_matches("Bearer abd", "abc"));
  CHECK_FALSE(bearer_matches("Bearer abc ", "abc"));
  CHECK_FALSE(bearer_matches("bearer abc", "abc"));
  CHECK_FALSE(bearer_matches("abc", "abc"));
  CHECK_FALSE(bearer_matches("", "abc"));
}
