// Pass 2: rules that span keys or sections. Each problem is reported at the line of the key a
// user would edit; every rule runs even after earlier errors so one pass finds them all.
#include <algorithm>
#include <cmath>
#include <map>

#include "config/config_reader.h"
#include "tenant/glob.h"
#include "tenant/planner.h"

namespace helios::config {
namespace {

// The first of several candidate (label, key) places that is set in the file.
int first_line(ReadContext& ctx,
               std::initializer_list<std::pair<const char*, const char*>> places) {
  for (const auto& [label, key] : places) {
    if (int line = ctx.line_of(label, key)) return line;
  }
  return 0;
}

std::string rule_label(size_t index) {
  return "[[tenant_quotas.limits]] #" + std::to_string(index + 1);
}

// ceil() that ignores floating-point dust: 120 * 0.025 * 2.0 is 6, not 7.
int64_t ceil_clean(double v) {
  return static_cast<int64_t>(std::ceil(v - 1e-9));
}

void check_backend(const Config& c, ReadContext& ctx) {
  const BackendConfig& b = c.backend;
  if (b.min_connections > b.max_connections) {
    const int line = first_line(ctx, {{"[backend]", "min_connections"},
                                      {"[pool_mode]", "min_idle"},
                                      {"[backend]", "max_connections"},
                                      {"[pool_mode]", "max_pool_size"}});
    ctx.diag().error(line, "[backend] min_connections (" + std::to_string(b.min_connections) +
                               ") must not exceed max_connections (" +
                               std::to_string(b.max_connections) + ")");
  }
  if (b.db_max_connections > 0 && b.reserved_connections >= b.db_max_connections) {
    ctx.diag().error(first_line(ctx, {{"[backend]", "reserved_connections"}}),
                     "[backend] reserved_connections (" + std::to_string(b.reserved_connections) +
                         ") must be less than db_max_connections (" +
                         std::to_string(b.db_max_connections) + ")");
  }
  if (b.sslmode == SslMode::kVerifyFull && b.sslrootcert.empty()) {
    ctx.diag().error(first_line(ctx, {{"[backend]", "sslmode"}}),
                     "[backend] sslmode = \"verify-full\" needs sslrootcert (the CA file that "
                     "signed the server's certificate)");
  }
}

void check_budget(const Config& c, ReadContext& ctx) {
  const ConnectionBudget budget = compute_connection_budget(c);
  if (budget.checked() && !budget.fits() && budget.reserved < budget.db_max) {
    ctx.diag().error(first_line(ctx, {{"[backend]", "db_max_connections"}}),
                     "connection budget: " + budget.summary() + " (" + budget.breakdown() + ")");
  }
  if (!budget.checked() && !c.tiers.empty()) {
    ctx.diag().warn(c.tiers.front().line,
                    "[backend] db_max_connections is not set, so tier pools (" +
                        std::to_string(budget.needed) +
                        " connections with the default pool) are not checked against the "
                        "database's max_connections");
  }
  const double ratio = c.connection_pool.multiplexing_ratio;
  if (ratio > 0 && budget.needed > 0) {
    const double actual =
        static_cast<double>(c.connection_pool.max_client_connections) / budget.needed;
    if (actual > ratio + 1e-9) {
      ctx.diag().warn(first_line(ctx, {{"[connection_pool]", "multiplexing_ratio"}}),
                      "[connection_pool] multiplexing_ratio " + std::to_string(ceil_clean(ratio)) +
                          ": max_client_connections " +
                          std::to_string(c.connection_pool.max_client_connections) + " over " +
                          std::to_string(budget.needed) + " backend connections is " +
                          std::to_string(ceil_clean(actual)) +
                          " clients per backend connection, above the target");
    }
  }
}

void check_tiers(const Config& c, ReadContext& ctx) {
  for (const TierConfig& t : c.tiers) {
    const std::string label = "[tiers." + t.name + "]";
    auto line = [&](const char* key) {
      const int l = ctx.line_of(label, key);
      return l ? l : t.line;
    };
    if (t.min_connections > t.pool_size) {
      ctx.diag().error(line("min_connections"),
                       label + " min_connections (" + std::to_string(t.min_connections) +
                           ") must not exceed pool_size (" + std::to_string(t.pool_size) + ")");
    }
    if (t.mode == TierMode::kDedicated && t.expected_tenants == 0 &&
        c.backend.db_max_connections > 0) {
      ctx.diag().warn(t.line, label +
                                  " is dedicated but expected_tenants is 0, so its "
                                  "per-tenant pools are not counted in the budget check");
    }
    if (t.mode == TierMode::kShared && t.expected_tenants > 0) {
      ctx.diag().warn(line("expected_tenants"),
                      label +
                          " expected_tenants only matters for dedicated tiers (a shared "
                          "tier has one pool)");
    }
    if (t.peak_qps > 0 && t.mean_service_s > 0) {
      // Little's law: L = peak_qps x mean_service_s connections are busy at steady state.
      const int64_t floor = tenant::plan_pool_size(t.peak_qps, t.mean_service_s, 1.0);
      if (t.pool_size < floor) {
        ctx.diag().error(line("pool_size"),
                         label + " pool_size " + std::to_string(t.pool_size) +
                             " is below the steady-state need peak_qps x mean_service_s = " +
                             std::to_string(floor) +
                             " connections; its queue would grow without bound");
      } else if (t.burst_factor > 0) {
        const int64_t planned =
            tenant::plan_pool_size(t.peak_qps, t.mean_service_s, t.burst_factor);
        if (t.pool_size < planned) {
          ctx.diag().warn(line("pool_size"),
                          label + " pool_size " + std::to_string(t.pool_size) +
                              " is below the planned size ceil(L x burst_factor) = " +
                              std::to_string(planned) + " (heliosctl plan)");
        }
      }
    }
    if ((t.peak_qps > 0) != (t.mean_service_s > 0) || (t.burst_factor > 0 && t.peak_qps == 0)) {
      ctx.diag().warn(t.line, label +
                                  " planner inputs need both peak_qps and mean_service_s "
                                  "(burst_factor is optional); they are not checked");
    }
  }
}

void check_limits_edge(const TenantLimits& l, const std::string& label, const Config& c,
                       ReadContext& ctx, int section_line) {
  auto line = [&](const char* key) {
    const int v = ctx.line_of(label, key);
    return v ? v : section_line;
  };
  if (l.edge_syn_rate > 0 && l.edge_cidrs.empty()) {
    ctx.diag().error(line("edge_syn_rate"),
                     label +
                         " edge_syn_rate needs edge_cidrs: the XDP guard knows a tenant by "
                         "its source prefixes");
  }
  if (!l.edge_cidrs.empty() && !c.edge.enabled) {
    ctx.diag().warn(line("edge_cidrs"),
                    label + " edge_cidrs has no effect while [edge] enabled = false");
  }
  if (l.max_qps == 0 && l.qps_burst > 0) {
    ctx.diag().warn(line("qps_burst"), label + " qps_burst has no effect without max_qps");
  }
}

void check_tenants(const Config& c, ReadContext& ctx) {
  const TenantQuotaConfig& q = c.tenant_quotas;
  if (!q.enabled && !q.limits.empty()) {
    ctx.diag().warn(first_line(ctx, {{"[tenant_quotas]", "enabled"}}),
                    "[tenant_quotas] enabled is false, so its " + std::to_string(q.limits.size()) +
                        " limit rule(s) are not enforced");
  }
  std::vector<bool> valid(q.limits.size(), false);
  for (size_t i = 0; i < q.limits.size(); ++i) {
    const TenantRule& rule = q.limits[i];
    const std::string label = rule_label(i);
    if (rule.tenant_pattern.empty()) continue;  // reported while parsing
    Status s = tenant::glob_validate(rule.tenant_pattern);
    if (!s) {
      const int line = ctx.line_of(label, "tenant_pattern");
      ctx.diag().error(line ? line : rule.line, label + " tenant_pattern \"" + rule.tenant_pattern +
                                                    "\" is not a valid glob: " + s.error().message);
      continue;
    }
    valid[i] = true;
    check_limits_edge(rule.limits, label, c, ctx, rule.line);
  }
  check_limits_edge(q.default_limits, "[tenant_quotas.default]", c, ctx, 0);

  // Most specific pattern wins; two overlapping patterns of equal specificity have no winner.
  for (size_t j = 0; j < q.limits.size(); ++j) {
    if (!valid[j]) continue;
    for (size_t i = 0; i < j; ++i) {
      if (!valid[i]) continue;
      const std::string& a = q.limits[i].tenant_pattern;
      const std::string& b = q.limits[j].tenant_pattern;
      if (tenant::glob_specificity(a) != tenant::glob_specificity(b)) continue;
      if (!tenant::globs_overlap(a, b)) continue;
      const std::optional<std::string> example = tenant::overlap_example(a, b);
      ctx.diag().error(q.limits[j].line,
                       "ambiguous rules at lines " + std::to_string(q.limits[i].line) + " and " +
                           std::to_string(q.limits[j].line) + ": both match e.g. \"" +
                           example.value_or("") + "\" (\"" + a + "\" and \"" + b +
                           "\" are equally specific; make one more specific or remove one)");
    }
  }

  // The XDP guard keys tenants by prefix in an LPM trie: one prefix cannot belong to two rules.
  std::map<std::string, size_t> owner;
  for (size_t i = 0; i < q.limits.size(); ++i) {
    for (const Cidr& cidr : q.limits[i].limits.edge_cidrs) {
      const std::string text = cidr.to_string();
      auto [it, inserted] = owner.emplace(text, i);
      if (!inserted) {
        const std::string label = rule_label(i);
        const int line = ctx.line_of(label, "edge_cidrs");
        ctx.diag().error(line ? line : q.limits[i].line,
                         label + " edge_cidrs: " + text + " is also listed by rule #" +
                             std::to_string(it->second + 1) + " at line " +
                             std::to_string(q.limits[it->second].line));
      }
    }
  }
}

void check_readable(const std::string& path, const std::string& what, int line, ReadContext& ctx) {
  if (path.empty() || !ctx.options().resolve_secrets) return;
  Result<std::string> r = ctx.read_file(path);
  if (!r) ctx.diag().error(line, what + ": cannot read \"" + path + "\": " + r.error().message);
}

void check_auth_tls(const Config& c, ReadContext& ctx) {
  const AuthConfig& a = c.auth;
  const int type_line = std::max(1, first_line(ctx, {{"[auth]", "type"},
                                                     {"[auth]", ""},
                                                     {"[backend]", ""},
                                                     {"[pool_mode]", ""},
                                                     {"[proxy]", ""}}));
  if (a.type != AuthType::kTrust && a.auth_file.empty() && a.auth_user.empty()) {
    ctx.diag().error(
        type_line,
        "[auth] type = \"" + std::string(to_string(a.type)) +
            "\" with no auth_file: the proxy checks client passwords by looking up their "
            "secret with auth_query, and needs a database user to run it as. Set [backend] "
            "user (with password_file), or [auth] auth_user (with auth_password_file), or set "
            "[auth] auth_file to a userlist, or use [auth] type = \"trust\"");
  }
  if (a.type == AuthType::kTrust) {
    ctx.diag().warn(type_line, "[auth] type = \"trust\": clients log in without a password");
  }
  check_readable(a.auth_file, "[auth] auth_file", first_line(ctx, {{"[auth]", "auth_file"}}), ctx);

  const TlsConfig& t = c.tls;
  if (t.client_tls_mode != ClientTlsMode::kDisable) {
    const int mode_line = first_line(ctx, {{"[tls]", "client_tls_mode"}});
    if (t.cert_file.empty() || t.key_file.empty()) {
      ctx.diag().error(mode_line, "[tls] client_tls_mode = \"" +
                                      std::string(to_string(t.client_tls_mode)) +
                                      "\" needs cert_file and key_file");
    }
    check_readable(t.cert_file, "[tls] cert_file", first_line(ctx, {{"[tls]", "cert_file"}}), ctx);
    check_readable(t.key_file, "[tls] key_file", first_line(ctx, {{"[tls]", "key_file"}}), ctx);
    check_readable(t.ca_file, "[tls] ca_file", first_line(ctx, {{"[tls]", "ca_file"}}), ctx);
    if (c.proxy.data_path == DataPathMode::kKernel) {
      ctx.diag().warn(first_line(ctx, {{"[proxy]", "data_path"}}),
                      "[proxy] data_path = \"kernel\": TLS client leases stay on the userspace "
                      "path (the kernel path would need kTLS)");
    }
  }
}

void check_edge(const Config& c, ReadContext& ctx) {
  const EdgeConfig& e = c.edge;
  if (!e.enabled) return;
  const int line = first_line(ctx, {{"[edge]", "enabled"}});
  if (e.interface.empty()) {
    ctx.diag().error(line, "[edge] enabled = true needs interface (the NIC to attach XDP to)");
  }
  if (!e.vip && c.vip.address.empty()) {
    ctx.diag().error(line,
                     "[edge] enabled = true needs vip (\"ADDR:PORT\" to guard) or a [vip] "
                     "address");
  }
}

bool same_listener(const HostPort& a, const std::string& b_host, uint16_t b_port) {
  auto wildcard = [](const std::string& h) { return h == "0.0.0.0" || h == "::"; };
  return a.port == b_port && (a.host == b_host || wildcard(a.host) || wildcard(b_host));
}

void check_listeners(const Config& c, ReadContext& ctx) {
  const ProxyConfig& p = c.proxy;
  if (same_listener(p.listen_address, p.admin_listen_address.host, p.admin_listen_address.port)) {
    ctx.diag().error(first_line(ctx, {{"[proxy]", "admin_listen_address"}}),
                     "[proxy] admin_listen_address " + p.admin_listen_address.to_string() +
                         " uses the same port as listen_address " + p.listen_address.to_string());
  }
  const std::string& admin_host = p.admin_listen_address.host;
  const bool loopback =
      admin_host == "localhost" || admin_host == "::1" || admin_host.rfind("127.", 0) == 0;
  if (!loopback && c.admin.token.empty()) {
    ctx.diag().warn(first_line(ctx, {{"[proxy]", "admin_listen_address"}}),
                    "[proxy] admin_listen_address " + p.admin_listen_address.to_string() +
                        " is not loopback and [admin] has no token: anyone who can reach it "
                        "can reload and drain the proxy");
  }
  if (!c.metrics.enabled) return;
  const int line = first_line(ctx, {{"[metrics]", "prometheus_port"}});
  const std::string& mhost = c.metrics.prometheus_address;
  const uint16_t mport = c.metrics.prometheus_port;
  if (same_listener(p.listen_address, mhost, mport)) {
    ctx.diag().error(line, "[metrics] prometheus_port " + std::to_string(mport) +
                               " is also the proxy's listen_address port");
  } else if (same_listener(p.admin_listen_address, mhost, mport)) {
    ctx.diag().error(line, "[metrics] prometheus_port " + std::to_string(mport) +
                               " is also the admin_listen_address port (the admin API and "
                               "Prometheus are separate listeners)");
  }
}

}  // namespace

void validate_config(Config& config, ReadContext& ctx) {
  check_backend(config, ctx);
  check_budget(config, ctx);
  check_tiers(config, ctx);
  check_tenants(config, ctx);
  check_auth_tls(config, ctx);
  check_edge(config, ctx);
  check_listeners(config, ctx);
}

}  // namespace helios::config
