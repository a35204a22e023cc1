// The admin API's request handling (handle_admin_request: method, path, query parameters,
// Authorization -> response) on arbitrary requests against a proxy state whose tenant and pool
// names are arbitrary client bytes. Never crashes or throws; every answer has a known status and
// a body in its content type (JSON that parses; a Prometheus text whose lines are well formed);
// reload and drain run only for a POST that carries the mutation token; with an [admin] token,
// only /health and /ready answer without it.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "ops/admin_router.h"

using namespace helios;
using namespace helios::config;
using namespace helios::ops;
using namespace helios::proxy;

namespace {

class FuzzTarget final : public AdminTarget {
 public:
  ProxySnapshot snap;
  std::string token, generated;
  bool is_ready = true, is_draining = false;
  ReloadSample next_reload;
  int reloads = 0, drains = 0;

  ProxySnapshot snapshot() override { return snap; }
  bool ready() override { return is_ready; }
  bool draining() override { return is_draining; }
  uint64_t quota_rejections_1h(const ProxySnapshot&) override { return 3; }
  ReloadSample reload() override {
    ++reloads;
    return next_reload;
  }
  void drain() override { ++drains; }
  std::string admin_token() override { return token; }
  std::string mutation_token() override { return token.empty() ? generated : token; }
};

std::string pick(FuzzedDataProvider& in, std::initializer_list<const char*> known) {
  if (in.ConsumeBool()) return in.ConsumeRandomLengthString(64);
  std::vector<const char*> v(known);
  return v[in.ConsumeIntegralInRange<size_t>(0, v.size() - 1)];
}

void fill_snapshot(FuzzedDataProvider& in, ProxySnapshot& s) {
  s.mode = PoolMode(in.ConsumeIntegralInRange<int>(0, 2));
  s.max_client_connections = in.ConsumeIntegralInRange<int64_t>(0, 100000);
  s.quotas_enabled = in.ConsumeBool();
  s.client_connections = in.ConsumeIntegralInRange<int64_t>(0, 1000);
  s.config_source = in.ConsumeRandomLengthString(32);
  for (int n = in.ConsumeIntegralInRange<int>(0, 3); n > 0; --n) {
    PoolSample p;
    p.snap.name = in.ConsumeRandomLengthString(24);
    p.database = in.ConsumeRandomLengthString(16);
    p.user = in.ConsumeRandomLengthString(16);
    p.snap.total = in.ConsumeIntegralInRange<int64_t>(0, 100);
    p.snap.max = in.ConsumeIntegralInRange<int64_t>(0, 100);
    p.snap.last_connect_error = in.ConsumeRandomLengthString(32);
    s.pools.push_back(std::move(p));
  }
  for (int n = in.ConsumeIntegralInRange<int>(0, 4); n > 0; --n) {
    TenantSample t;
    t.name = in.ConsumeRandomLengthString(24);
    t.stats.client_connections = in.ConsumeIntegral<uint16_t>();
    t.stats.limits.max_connections = in.ConsumeIntegral<uint16_t>();
    // As the config bounds them (max_qps <= 1e9) and the proxy measures them (finite, >= 0).
    t.stats.limits.max_qps = in.ConsumeFloatingPointInRange<double>(0, 1e9);
    t.stats.avg_query_ms = in.ConsumeFloatingPointInRange<double>(0, 1e12);
    t.stats.current_qps = in.ConsumeFloatingPointInRange<double>(0, 1e12);
    t.overflow = in.ConsumeBool();
    s.tenants.push_back(std::move(t));
  }
}

// Each sample line: name, optional {labels}, one space, a value; labels are name="escaped".
void check_exposition(const std::string& text) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) __builtin_trap();  // every line ends with '\n'
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    size_t i = 0;
    while (i < line.size() &&
           (isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == ':'))
      ++i;
    if (i == 0) __builtin_trap();
    if (i < line.size() && line[i] == '{') {
      ++i;
      bool in_value = false;
      for (; i < line.size(); ++i) {
        char c = line[i];
        if (in_value && c == '\\') {
          ++i;
          if (i >= line.size() || (line[i] != '\\' && line[i] != '"' && line[i] != 'n'))
            __builtin_trap();
        } else if (c == '"') {
          in_value = !in_value;
        } else if (!in_value && c == '}') {
          break;
        }
      }
      if (i >= line.size()) __builtin_trap();
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  FuzzTarget target;
  target.token = in.ConsumeBool() ? "" : "t0ken";
  target.generated = in.ConsumeBool() ? "g3n" : "";
  target.is_ready = in.ConsumeBool();
  target.is_draining = in.ConsumeBool();
  target.next_reload = {true, in.ConsumeBool(), in.ConsumeRandomLengthString(64), 1000};
  fill_snapshot(in, target.snap);

  AdminRequest req;
  req.method = pick(in, {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"});
  req.path =
      pick(in, {"/health", "/ready", "/pool/stats", "/api/v1/pool/stats", "/api/v1/tenants/stats",
                "/api/v1/status", "/metrics", "/api/v1/reload", "/api/v1/drain", "/", "/api/v1/"});
  for (int n = in.ConsumeIntegralInRange<int>(0, 2); n > 0; --n) {
    std::string key = pick(in, {"limit"});
    req.params.emplace(std::move(key), in.ConsumeRandomLengthString(24));
  }
  req.authorization = pick(in, {"", "Bearer t0ken", "Bearer g3n", "Bearer ", "bearer t0ken"});

  const AdminResponse res = handle_admin_request(target, req);

  static const std::set<int> kStatuses{200, 202, 400, 401, 403, 404, 405, 422, 503};
  if (!kStatuses.count(res.status)) __builtin_trap();
  if (res.content_type == "application/json") {
    if (!nlohmann::json::accept(res.body)) __builtin_trap();
  } else if (res.content_type.rfind("text/plain", 0) == 0) {
    if (req.path != "/metrics") __builtin_trap();
    check_exposition(res.body);
  } else {
    __builtin_trap();
  }
  const std::string mutation = target.mutation_token();
  if (target.reloads + target.drains > 0) {
    if (target.reloads + target.drains != 1 || req.method != "POST" || mutation.empty() ||
        req.authorization != "Bearer " + mutation)
      __builtin_trap();
  }
  const bool is_public = req.path == "/health" || req.path == "/ready";
  if (!target.token.empty() && !is_public && req.authorization != "Bearer t0ken" &&
      res.status != 401 && res.status != 405)
    __builtin_trap();
  return 0;
}
