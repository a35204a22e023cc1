// heliosctl status | pools | tenants | reload | drain: operate a running heliosproxy through its
// admin API (--admin URL, --token or HELIOS_ADMIN_URL / HELIOS_ADMIN_TOKEN).
//
// Human tables by default, the API's JSON with -o json. Exit codes (ctl_commands.h):
//   0  ok (status: the proxy is ready)
//   1  the proxy answered "no": not ready / draining, reload refused, unauthorized, HTTP error
//   2  bad arguments
//   3  the admin API could not be reached
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "app/ctl_commands.h"
#include "ops/admin_token.h"

namespace helios::ctl {
namespace {

using nlohmann::json;

struct Reply {
  int status = 0;
  json body;
};

// The bearer token: --token / HELIOS_ADMIN_TOKEN, else the first line of --token-file /
// HELIOS_ADMIN_TOKEN_FILE, else of the proxy's generated token file (admin_token next to
// $HELIOS_PROXY_CONFIG, else /var/lib/helios/admin_token). "" when none is found: the read-only
// endpoints need none unless the proxy has an [admin] token.
std::string bearer_token(const CtlContext& ctx, std::string* from) {
  if (!ctx.token.empty()) {
    *from = "--token / HELIOS_ADMIN_TOKEN";
    return ctx.token;
  }
  std::vector<std::string> candidates;
  if (!ctx.token_file.empty()) {
    candidates.push_back(ctx.token_file);
  } else {
    if (const char* cfg = std::getenv("HELIOS_PROXY_CONFIG"); cfg && *cfg)
      candidates.push_back(ops::generated_token_path(cfg, nullptr));
    candidates.push_back(std::string("/var/lib/helios/") + ops::kAdminTokenFileName);
  }
  for (const auto& path : candidates) {
    if (auto t = ops::read_token_file(path)) {
      *from = path;
      return *t;
    }
  }
  *from = candidates.front();
  return "";
}

// One request to the admin API. On failure prints why and sets *exit_code.
std::optional<Reply> call(const CtlContext& ctx, const std::string& method, const std::string& path,
                          int* exit_code) {
  httplib::Client cli(ctx.admin_url);
  if (!cli.is_valid()) {
    std::cerr << "heliosctl: invalid admin URL \"" << ctx.admin_url << "\"\n";
    *exit_code = kExitUsage;
    return std::nullopt;
  }
  cli.set_connection_timeout(3, 0);
  cli.set_read_timeout(60, 0);
  httplib::Headers headers;
  std::string token_from;
  std::string token = bearer_token(ctx, &token_from);
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  httplib::Result res = method == "POST" ? cli.Post(path.c_str(), headers, "", "application/json")
                                         : cli.Get(path.c_str(), headers);
  if (!res) {
    std::cerr << "heliosctl: cannot reach the admin API at " << ctx.admin_url << ": "
              << httplib::to_string(res.error()) << "\n";
    *exit_code = kExitUnreachable;
    return std::nullopt;
  }
  Reply r;
  r.status = res->status;
  r.body = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (r.status == 401) {
    std::cerr << "heliosctl: unauthorized: pass the admin token with --token or "
                 "HELIOS_ADMIN_TOKEN, or the file holding it with --token-file or "
                 "HELIOS_ADMIN_TOKEN_FILE (tried "
              << (token.empty() ? token_from + ": not readable" : token_from) << ")\n";
    *exit_code = kExitFailed;
    return std::nullopt;
  }
  if (r.body.is_discarded()) {
    std::cerr << "heliosctl: " << method << " " << path << ": HTTP " << r.status
              << " with a body that is not JSON\n";
    *exit_code = kExitFailed;
    return std::nullopt;
  }
  return r;
}

// j[key], or null when j is not an object or has no such key (never throws or asserts).
const json& at(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

void print_json(const json& j) {
  std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

std::string str(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return "-";
  if (j.is_number_float()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", j.get<double>());
    std::string s = buf;
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Left-aligned first column, right-aligned numbers.
void print_table(const std::vector<std::string>& head,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(head.size());
  for (size_t c = 0; c < head.size(); ++c) width[c] = head[c].size();
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size() && c < width.size(); ++c)
      width[c] = std::max(width[c], r[c].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      std::string pad(width[c] - cells[c].size(), ' ');
      if (c) out += "  ";
      out += c == 0 ? cells[c] + pad : pad + cells[c];
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    std::cout << out << "\n";
  };
  line(head);
  for (const auto& r : rows) line(r);
}

int run_status(const CtlContext& ctx) {
  int rc = kExitOk;
  auto r = call(ctx, "GET", "/api/v1/status", &rc);
  if (!r) return rc;
  const json& s = r->body;
  bool ready = s.value("ready", false);
  if (ctx.output == "json") {
    print_json(s);
    return ready ? kExitOk : kExitFailed;
  }
  std::string state = ready ? "ready" : s.value("draining", false) ? "draining" : "not ready";
  std::cout << "heliosproxy " << str(at(s, "version")) << " at " << ctx.admin_url << ": " << state
            << "\n";
  std::vector<std::vector<std::string>> rows = {
      {"uptime", str(at(s, "uptime_s")) + " s"},
      {"config", str(at(s, "config"))},
      {"mode", str(at(s, "mode")) + " (" + str(at(s, "data_path")) + " data path)"},
      {"workers", str(at(s, "workers"))},
      {"clients", str(at(s, "client_connections")) + " of " + str(at(s, "max_client_connections"))},
      {"backends", str(at(s, "backend_connections")) + " (" + str(at(s, "backend_active")) +
                       " active, " + str(at(s, "backend_idle")) + " idle) in " +
                       str(at(s, "pools")) + " pool(s); " + str(at(s, "waiting_clients")) +
                       " client(s) waiting"},
      {"tenants", str(at(s, "tenants")) +
                      (s.value("quotas_enabled", false) ? " (quotas on)" : " (quotas off)")},
  };
  const json& lr = at(s, "last_reload");
  if (lr.is_null())
    rows.push_back({"last reload", "none"});
  else if (lr.value("ok", false))
    rows.push_back({"last reload", "ok in " + str(at(lr, "took_ms")) + " ms"});
  else
    rows.push_back({"last reload", "refused: " + str(at(lr, "error"))});
  for (const auto& row : rows) std::printf("  %-12s %s\n", row[0].c_str(), row[1].c_str());
  return ready ? kExitOk : kExitFailed;
}

int run_pools(const CtlContext& ctx) {
  int rc = kExitOk;
  auto r = call(ctx, "GET", "/api/v1/pool/stats", &rc);
  if (!r) return rc;
  const json& p = r->body;
  if (ctx.output == "json") {
    print_json(p);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const json& x : at(p, "pools"))
    rows.push_back({str(at(x, "name")), str(at(x, "mode")), str(at(x, "total")),
                    str(at(x, "active")), str(at(x, "idle")), str(at(x, "waiting")),
                    str(at(x, "max")), str(at(x, "acquires")), str(at(x, "avg_acquire_ms")),
                    str(at(x, "p99_acquire_ms")), str(at(x, "avg_lease_ms"))});
  print_table({"POOL", "MODE", "TOTAL", "ACTIVE", "IDLE", "WAITING", "MAX", "ACQUIRES",
               "AVG_ACQ_MS", "P99_ACQ_MS", "AVG_LEASE_MS"},
              rows);
  std::cout << "\nbackends " << str(at(p, "active")) << "/" << str(at(p, "max")) << " active ("
            << str(at(p, "idle")) << " idle), clients " << str(at(p, "client_connections"))
            << ", waiting " << str(at(p, "queued_clients")) << ", quota rejections (1h) "
            << str(at(p, "quota_rejections_1h")) << "\n";
  return kExitOk;
}

// Exit 0 when a primary is known (or only one host is configured), 1 otherwise.
int run_hosts(const CtlContext& ctx) {
  int rc = kExitOk;
  auto r = call(ctx, "GET", "/api/v1/hosts", &rc);
  if (!r) return rc;
  const json& h = r->body;
  if (ctx.output == "json") {
    print_json(h);
  } else {
    std::vector<std::vector<std::string>> rows;
    for (const json& x : at(h, "hosts"))
      rows.push_back({str(at(x, "address")), str(at(x, "role")),
                      at(x, "banned").is_boolean() && at(x, "banned").get<bool>() ? "yes" : "no",
                      at(x, "lagging").is_boolean() && at(x, "lagging").get<bool>() ? "yes" : "no",
                      str(at(x, "lag_seconds")), str(at(x, "lag_bytes")), str(at(x, "routed")),
                      str(at(x, "last_error"))});
    if (rows.empty())
      std::cout << "one [backend] host: no roles are checked\n";
    else
      print_table(
          {"HOST", "ROLE", "BANNED", "LAGGING", "LAG_S", "LAG_BYTES", "ROUTED", "LAST_ERROR"},
          rows);
  }
  bool primary = at(h, "hosts").empty();
  for (const json& x : at(h, "hosts")) primary = primary || str(at(x, "role")) == "primary";
  return primary ? kExitOk : kExitFailed;
}

int run_tenants(const CtlContext& ctx, size_t limit) {
  int rc = kExitOk;
  auto r = call(ctx, "GET", "/api/v1/tenants/stats?limit=" + std::to_string(limit), &rc);
  if (!r) return rc;
  const json& t = r->body;
  if (ctx.output == "json") {
    print_json(t);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const json& x : at(t, "tenants")) {
    uint64_t rejected = 0;
    for (const auto& [k, v] : at(x, "rejections").items()) rejected += v.get<uint64_t>();
    rows.push_back({str(at(x, "id")), str(at(x, "connections")),
                    x.value("connections_limited", false)
                        ? str(at(x, "max_connections"))
                        : "(" + str(at(x, "max_connections")) + ")",
                    str(at(x, "current_qps")),
                    x.value("qps_limited", false) ? str(at(x, "max_qps")) : "unlimited",
                    str(at(x, "active_transactions")), str(at(x, "queued_requests")),
                    str(at(x, "avg_query_ms")), std::to_string(rejected), str(at(x, "pool_mode"))});
  }
  print_table({"TENANT", "CONNS", "MAX_CONNS", "QPS", "MAX_QPS", "ACTIVE", "QUEUED", "AVG_QUERY_MS",
               "REJECTED", "MODE"},
              rows);
  std::cout << "\n"
            << str(at(t, "total_tenants")) << " tenant(s)"
            << (t.value("quotas_enabled", false) ? "" : ", quotas off")
            << "; (N) = no tenant limit, the global max_client_connections applies\n";
  return kExitOk;
}

int run_fleet(const CtlContext& ctx) {
  int rc = kExitOk;
  auto r = call(ctx, "GET", "/api/v1/fleet", &rc);
  if (!r) return rc;
  const json& f = r->body;
  if (ctx.output == "json") {
    print_json(f);
    return kExitOk;
  }
  if (!f.value("enabled", false)) {
    std::cout << "no [fleet] section: this instance enforces its quotas alone\n";
    return kExitOk;
  }
  std::cout << "instance " << str(at(f, "instance_id")) << " via redis " << str(at(f, "redis"))
            << (f.value("degraded", false) ? " (DEGRADED: Redis unreachable, static shares)" : "")
            << "\n"
            << str(at(f, "live_instances")) << " live instance(s):";
  for (const json& i : at(f, "instances")) std::cout << " " << str(i);
  std::cout << "\nrenewals " << str(at(f, "renewals")) << ", failures "
            << str(at(f, "renewal_failures")) << ", last renewal " << str(at(f, "last_renewal_ms"))
            << " ms\n";
  if (f.contains("cancels")) {
    const json& c = at(f, "cancels");
    std::cout << "cancels: peer " << str(at(f, "peer")) << " at " << str(at(f, "cancel_address"))
              << "; forwarded " << str(at(c, "forwarded")) << ", received "
              << str(at(c, "received")) << ", dropped " << str(at(c, "dropped_unknown_peer"))
              << " unknown peer / " << str(at(c, "dropped_busy")) << " busy / "
              << str(at(c, "dropped_unreachable")) << " unreachable\n";
  }
  std::cout << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const json& x : at(f, "shares"))
    rows.push_back({str(at(x, "tenant")), str(at(x, "limit_name")), str(at(x, "limit")),
                    str(at(x, "share")), str(at(x, "used")), str(at(x, "want"))});
  print_table({"TENANT", "LIMIT", "FLEET_LIMIT", "THIS_SHARE", "USED", "WANT"}, rows);
  return kExitOk;
}

int run_reload(const CtlContext& ctx) {
  int rc = kExitOk;
  auto r = call(ctx, "POST", "/api/v1/reload", &rc);
  if (!r) return rc;
  bool ok = r->body.value("ok", false);
  if (ctx.output == "json")
    print_json(r->body);
  else if (ok)
    std::cout << "reloaded in " << str(at(r->body, "took_ms")) << " ms\n";
  else
    std::cerr << "reload refused, the running config is kept:\n"
              << str(r->body.value("error", json("HTTP " + std::to_string(r->status)))) << "\n";
  return ok ? kExitOk : kExitFailed;
}

int run_drain(const CtlContext& ctx, int wait_s) {
  int rc = kExitOk;
  auto r = call(ctx, "POST", "/api/v1/drain", &rc);
  if (!r) return rc;
  if (r->status / 100 != 2) {
    std::cerr << "heliosctl: drain: HTTP " << r->status << " " << str(r->body) << "\n";
    return kExitFailed;
  }
  if (ctx.output == "json") print_json(r->body);
  if (wait_s <= 0) {
    if (ctx.output != "json") std::cout << "draining\n";
    return kExitOk;
  }
  // The admin API goes away when the process exits: poll /health until it stops answering.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
  while (std::chrono::steady_clock::now() < deadline) {
    httplib::Client cli(ctx.admin_url);
    cli.set_connection_timeout(1, 0);
    cli.set_read_timeout(2, 0);
    if (!cli.Get("/health")) {
      if (ctx.output != "json") std::cout << "drained: the proxy has exited\n";
      return kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::cerr << "heliosctl: the proxy is still draining after " << wait_s << " s\n";
  return kExitFailed;
}

// The API's documents are objects of known shape; anything else is reported, not thrown.
template <typename Fn>
int guarded(Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    std::cerr << "heliosctl: unexpected answer from the admin API: " << e.what() << "\n";
    return kExitFailed;
  }
}

}  // namespace

void register_admin_commands(CLI::App& app, CtlContext& ctx) {
  CLI::App* status = app.add_subcommand(
      "status", "Show the running proxy's state (exit 0 when ready, 1 when not or draining)");
  status->fallthrough();
  status->callback([&ctx] { ctx.exit_code = guarded([&] { return run_status(ctx); }); });

  CLI::App* pools = app.add_subcommand("pools", "Show every backend pool");
  pools->fallthrough();
  pools->callback([&ctx] { ctx.exit_code = guarded([&] { return run_pools(ctx); }); });

  CLI::App* hosts = app.add_subcommand(
      "hosts", "Show every [backend] host: role, ban, replica lag (exit 1 if no primary is known)");
  hosts->fallthrough();
  hosts->callback([&ctx] { ctx.exit_code = guarded([&] { return run_hosts(ctx); }); });

  auto limit = std::make_shared<size_t>(50);
  CLI::App* tenants =
      app.add_subcommand("tenants", "Show tenants, busiest (most connections) first");
  tenants->fallthrough();
  tenants->add_option("--limit", *limit, "show at most N tenants (default 50)");
  tenants->callback(
      [&ctx, limit] { ctx.exit_code = guarded([&] { return run_tenants(ctx, *limit); }); });

  CLI::App* fleet = app.add_subcommand(
      "fleet", "Show the fleet ([fleet]): live instances and this instance's quota shares");
  fleet->fallthrough();
  fleet->callback([&ctx] { ctx.exit_code = guarded([&] { return run_fleet(ctx); }); });

  CLI::App* reload = app.add_subcommand(
      "reload", "Reload the config file (exit 1 if refused; the running config is kept)");
  reload->fallthrough();
  reload->callback([&ctx] { ctx.exit_code = guarded([&] { return run_reload(ctx); }); });

  auto wait_s = std::make_shared<int>(0);
  CLI::App* drain = app.add_subcommand(
      "drain", "Stop accepting clients, let open transactions finish, then exit");
  drain->fallthrough();
  drain->add_option("--wait", *wait_s,
                    "wait up to SECONDS for the proxy to exit (exit 1 if it has not)");
  drain->callback(
      [&ctx, wait_s] { ctx.exit_code = guarded([&] { return run_drain(ctx, *wait_s); }); });
}

}  // namespace helios::ctl
