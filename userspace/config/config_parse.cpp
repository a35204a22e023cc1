// Pass 1: every section of the TOML document into Config, key by key, with types and ranges.
// Cross-field rules (min <= max, budget, ambiguous tenant rules, ...) are in config_validate.cpp.
#include <algorithm>
#include <limits>

#include "config/config_reader.h"

namespace helios::config {
namespace {

constexpr int64_t kMaxCount = 10'000'000;    // connection counts, pool sizes, tenants
constexpr int64_t kMaxRate = 1'000'000'000;  // qps and SYN/s
constexpr int64_t kMaxWeight = 1'000'000;

const std::vector<std::string> kSections = {
    "proxy",   "backend",       "connection_pool", "pool_mode", "auth", "tls",   "admin",
    "metrics", "tenant_quotas", "tiers",           "edge",      "vip",  "fleet", "routing",
};

bool read_pool_mode(SectionReader& r, std::string_view key, PoolMode& out) {
  return r.read_choice(key, out,
                       {{"session", PoolMode::kSession},
                        {"transaction", PoolMode::kTransaction},
                        {"statement", PoolMode::kStatement}});
}

bool read_data_path(SectionReader& r, std::string_view key, DataPathMode& out) {
  return r.read_choice(key, out,
                       {{"userspace", DataPathMode::kUserspace},
                        {"kernel", DataPathMode::kKernel},
                        {"auto", DataPathMode::kAuto}});
}

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// A top-level section, or null when absent. A known section name holding a non-table is
// reported here.
const toml::table* section(const toml::table& root, std::string_view name, ReadContext& ctx) {
  auto it = root.find(name);
  if (it == root.end()) return nullptr;
  if (const auto* t = it->second.as_table()) return t;
  ctx.diag().error(static_cast<int>(it->first.source().begin.line),
                   std::string(name) + " must be a section [" + std::string(name) + "], got " +
                       std::string(toml_type_name(it->second)));
  return nullptr;
}

int table_line(const toml::table* t) {
  return t ? line_of(*t) : 0;
}

void read_proxy(const toml::table& root, Config& config, ReadContext& ctx) {
  const toml::table* t = section(root, "proxy", ctx);
  SectionReader r(ctx, t, "[proxy]", "[proxy]", table_line(t));
  ProxyConfig& p = config.proxy;
  r.read_host_port("listen_address", p.listen_address, false);
  r.read_host_port("admin_listen_address", p.admin_listen_address, false);
  read_pool_mode(r, "mode", p.mode);
  r.read_choice("log_level", p.log_level,
                {{"trace", LogLevel::kTrace},
                 {"debug", LogLevel::kDebug},
                 {"info", LogLevel::kInfo},
                 {"warn", LogLevel::kWarn},
                 {"error", LogLevel::kError},
                 {"off", LogLevel::kOff}});
  int64_t workers = p.workers;
  if (r.read_int("workers", workers, 0, 1024)) p.workers = static_cast<int>(workers);
  r.read_choice("worker_scaling", p.worker_scaling,
                {{"load", WorkerScaling::kLoad}, {"fixed", WorkerScaling::kFixed}});
  r.read_double("worker_busy_target", p.worker_busy_target, 0.01, 1.0);
  int64_t receive_buffers = p.receive_buffers;
  if (r.read_int("receive_buffers", receive_buffers, 64, 32768)) {
    if (receive_buffers & (receive_buffers - 1))
      r.error("receive_buffers", std::to_string(receive_buffers) + " must be a power of two");
    else
      p.receive_buffers = receive_buffers;
  }
  std::string instance;
  if (r.read_string("instance", instance)) {
    if (valid_name(instance)) {
      p.instance = instance;
    } else {
      r.error("instance", "\"" + instance +
                              "\" must be 1-64 letters, digits, '_' or '-' (it names the BPF pin "
                              "directory /sys/fs/bpf/helios/<instance>)");
    }
  }
  read_data_path(r, "data_path", p.data_path);
  r.read_duration("startup_timeout", p.startup_timeout);
  r.read_int("max_unauthenticated_per_source", p.max_unauthenticated_per_source, 0, kMaxCount);
  r.read_duration("drain_timeout", p.drain_timeout);
  r.read_bool_or_choice("same_host_bypass", p.same_host_bypass, BypassSetting::kOn,
                        BypassSetting::kOff, {{"auto", BypassSetting::kAuto}});
  if (r.has("max_startup_packet")) {
    r.error("max_startup_packet",
            "is not configurable (the proxy bounds the startup packet at 10000 bytes, like "
            "PostgreSQL); remove it");
  }
  r.finish();
}

// hosts = ["h:p", ...] (or host/port as the one entry) and the health checker's settings.
void read_backend_hosts(SectionReader& r, BackendConfig& b) {
  std::vector<std::string> hosts;
  if (r.read_string_array("hosts", hosts)) {
    if (r.has("host") || r.has("port")) {
      r.error("hosts", "set either hosts or host/port, not both");
    } else if (hosts.empty()) {
      r.error("hosts", "must list at least one \"host:port\"");
    } else {
      for (const auto& h : hosts) {
        auto hp = parse_host_port(h, false);
        if (!hp) {
          r.error("hosts", "\"" + h + "\": " + hp.error().message);
          continue;
        }
        if (std::find(b.hosts.begin(), b.hosts.end(), *hp) != b.hosts.end()) {
          r.error("hosts", "\"" + h + "\" is listed twice");
          continue;
        }
        b.hosts.push_back(*hp);
      }
      if (b.hosts.size() > 16) r.error("hosts", "lists more than 16 hosts");
      if (!b.hosts.empty()) {
        b.host = b.hosts.front().host;
        b.port = b.hosts.front().port;
      }
    }
  }
  r.read_duration("health_check_interval", b.health_check_interval);
  r.read_duration("ban_time", b.ban_time);
  r.read_duration("failover_timeout", b.failover_timeout);
  r.read_duration("max_replica_lag", b.max_replica_lag);
  r.read_int("max_replica_lag_bytes", b.max_replica_lag_bytes, 0, int64_t(1) << 50);
  if (b.health_check_interval < 10 * kNanosPerMilli)
    r.error("health_check_interval", "must be at least 10ms");
}

void read_backend(const toml::table& root, Config& config, ReadContext& ctx) {
  const toml::table* t = section(root, "backend", ctx);
  SectionReader r(ctx, t, "[backend]", "[backend]", table_line(t));
  BackendConfig& b = config.backend;
  std::string host;
  if (r.read_string("host", host)) {
    if (host.empty()) {
      r.error("host",
              "must not be empty (a host name, an IP address, or a unix socket "
              "directory starting with \"/\")");
    } else {
      b.host = host;
    }
  }
  r.read_port("port", b.port);
  r.read_string("database", b.database);
  r.read_string("user", b.user);
  r.read_secret("password", "password_file", b.password);
  r.read_int("min_connections", b.min_connections, 0, kMaxCount);
  r.read_int("max_connections", b.max_connections, 1, kMaxCount);
  r.read_duration("connection_timeout", b.connection_timeout);
  const bool has_lifetime = r.has("max_lifetime");
  const bool has_alias = r.has("connection_lifetime");
  if (has_lifetime && has_alias) {
    r.error("connection_lifetime", "is another name for max_lifetime (line " +
                                       std::to_string(r.line_of("max_lifetime")) +
                                       "); set only one of them");
  } else if (has_alias) {
    r.read_duration("connection_lifetime", b.max_lifetime);
  } else {
    r.read_duration("max_lifetime", b.max_lifetime);
  }
  double jitter = b.lifetime_jitter;
  if (r.read_double("lifetime_jitter", jitter, 0, 1)) {
    if (jitter >= 1) {
      r.error("lifetime_jitter", "must be a fraction in [0, 1), got 1");
    } else {
      b.lifetime_jitter = jitter;
    }
  }
  r.read_duration("server_check_delay", b.server_check_delay);
  r.read_duration("tcp_user_timeout", b.tcp_user_timeout);
  r.read_int("db_max_connections", b.db_max_connections, 0, kMaxCount);
  r.read_int("reserved_connections", b.reserved_connections, 0, kMaxCount);
  r.read_choice("sslmode", b.sslmode,
                {{"disable", SslMode::kDisable},
                 {"prefer", SslMode::kPrefer},
                 {"require", SslMode::kRequire},
                 {"verify-full", SslMode::kVerifyFull}});
  if (r.read_string("sslrootcert", b.sslrootcert)) b.sslrootcert = ctx.resolve_path(b.sslrootcert);
  read_backend_hosts(r, b);
  r.finish();
}

void read_routing(const toml::table& root, Config& config, ReadContext& ctx) {
  const toml::table* t = section(root, "routing", ctx);
  SectionReader r(ctx, t, "[routing]", "[routing]", table_line(t));
  r.read_bool("read_write_split", config.routing.read_write_split);
  r.read_bool("read_your_writes", config.routing.read_your_writes);
  r.finish();
}

void read_connection_pool(const toml::table& root, Config& config, ReadContext& ctx) {
  const toml::table* t = section(root, "connection_pool", ctx);
  SectionReader r(ctx, t, "[connection_pool]", "[connection_pool]", table_line(t));
  ConnectionPoolConfig& c = config.connection_pool;
  r.read_double("multiplexing_ratio", c.multiplexing_ratio, 0, 1e6);
  r.read_duration("idle_timeout", c.idle_timeout);
  r.read_int("max_client_connections", c.max_client_connections, 1, kMaxCount);
  r.read_duration("acquire_timeout", c.acquire_timeout);
  r.read_string("server_reset_query", c.server_reset_query);
  r.read_duration("statement_timeout", c.statement_timeout);
  r.read_duration("idle_transaction_timeout", c.idle_transaction_timeout);
  r.read_duration("client_idle_timeout", c.client_idle_timeout);
  r.read_duration("query_timeout", c.query_timeout);
  r.read_choice("prepared_statement_mode", c.prepared_statement_mode,
                {{"disable", PreparedStatementMode::kDisable},
                 {"track", PreparedStatementMode::kTrack},
                 {"named", PreparedStatementMode::kNamed}});
  r.read_int("prepared_statement_cache_size", c.prepared_statement_cache_size, 1, kMaxCount);
  r.read_int("prepared_statement_memory_mb", c.prepared_statement_memory_mb, 0, 1'000'000);
  r.read_choice("pin_policy", c.pin_policy,
                {{"pin", PinPolicy::kPin}, {"error", PinPolicy::kError}});
  std::vector<std::string> params;
  if (r.read_string_array("track_parameters", params)) {
    bool ok = true;
    for (const std::string& p : params) {
      const bool valid = !p.empty() && std::all_of(p.begin(), p.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '_' || ch == '.';
      });
      if (!valid) {
        r.error("track_parameters", "\"" + p + "\" is not a parameter name");
        ok = false;
      }
    }
    if (ok) c.track_parameters = std::move(params);
  }
  r.finish();
}

// The tutorial's [pool_mode] section (seed 001), mapped onto the canonical keys. Setting the
// same thing in both places is an error that names both lines.
void read_pool_mode_section(const toml::table& root, Config& config, ReadContext& ctx) {
  const toml::table* t = section(root, "pool_mode", ctx);
  SectionReader r(ctx, t, "[pool_mode]", "[pool_mode]", table_line(t));
  // True when `key` is set here and the canonical key is not.
  auto use = [&](std::string_view key, const std::string& label,
                 std::initializer_list<std::string_view> canonical) {
    if (!r.has(key)) return false;
    for (std::string_view ckey : canonical) {
      const int cline = ctx.line_of(label, ckey);
      if (cline == 0) continue;
      ctx.diag().error(r.line_of(key), "[pool_mode] " + std::string(key) + " (line " +
                                           std::to_string(r.line_of(key)) + ") and " + label + " " +
                                           std::string(ckey) + " (line " + std::to_string(cline) +
                                           ") set the same thing; keep one");
      return false;
    }
    return true;
  };
  if (use("mode", "[proxy]", {"mode"})) read_pool_mode(r, "mode", config.proxy.mode);
  if (use("max_pool_size", "[backend]", {"max_connections"})) {
    r.read_int("max_pool_size", config.backend.max_connections, 1, kMaxCount);
  }
  if (use("min_idle", "[backend]", {"min_connections"})) {
    r.read_int("min_idle", config.backend.min_connections, 0, kMaxCount);
  }
  if (use("idle_timeout_secs", "[connection_pool]", {"idle_timeout"})) {
    r.read_seconds("idle_timeout_secs", config.connection_pool.idle_timeout);
  }
  if (use("max_lifetime_secs", "[backend]", {"max_lifetime", "connection_lifetime"})) {
    r.read_seconds("max_lifetime_secs", config.backend.max_lifetime);
  }
  if (use("acquire_timeout_secs", "[connection_pool]", {"acquire_timeout"})) {
    r.read_seconds("acquire_timeout_secs", config.connection_pool.acquire_timeout);
  }
  if (use("reset_query", "[connection_pool]", {"server_reset_query"})) {
    r.read_string("reset_query", config.connection_pool.server_reset_query);
  }
  if (use("prepared_statement_mode", "[connection_pool]", {"prepared_statement_mode"})) {
    r.read_choice("prepared_statement_mode", config.connection_pool.prepared_statement_mode,
                  {{"disable", PreparedStatementMode::kDisable},
                   {"track", PreparedStatementMode::kTrack},
                   {"named", PreparedStatementMode::kNamed}});
  }
  if (use("statement_timeout_secs", "[connection_pool]", {"statement_timeout"})) {
    r.read_seconds("statement_timeout_secs", config.connection_pool.statement_timeout);
  }
  r.finish();
}

void read_auth(const toml::table& root, Config& config, ReadContext& ctx) {
  const toml::table* t = section(root, "auth", ctx);
  SectionReader r(ctx, t, "[auth]", "[auth]", table_line(t));
  AuthConfig& a = config.auth;
  r.read_choice("type", a.type,
                {{"scram-sha-256", AuthType::kScramSha256},
                 {"md5", AuthType::kMd5},
                 {"trust", AuthType::kTrust}});
  if (r.read_string("auth_file", a.auth_file)) a.auth_file = ctx.resolve_path(a.auth_file);
  r.read_string("auth_query", a.auth_query);
  r.read_string("auth_user", a.auth_user);
  r.read_secret("auth_password", "auth_password_file", a.auth_password);
  r.read_string("auth_database", a.auth_database);
  r.read_duration("auth_cache_ttl", a.auth_cache_ttl);
  // Defaults that point at [backend], then libpq's: $PGUSER, else the OS user.
  if (a.auth_user.empty()) a.auth_user = config.backend.user;
  if (a.auth_user.empty() && a.type != AuthType::kTrust && a.auth_file.empty()) {
    std::string fallback = ctx.getenv("PGUSER").value_or("");
    std::string from = "$PGUSER";
    if (fallback.empty()) {
      fallback = ctx.os_user();
      from = "the OS user running the proxy";
    }
    if (!fallback.empty()) {
      a.auth_user = fallback;
      int line = 1;  // the first section that could have named a user
      for (const char* label : {"[auth]", "[backend]", "[pool_mode]", "[proxy]"}) {
        if (int l = ctx.line_of(label, "")) {
          line = l;
          break;
        }
      }
      ctx.diag().warn(line, "no auth user is configured, so auth_query runs as \"" + fallback +
                                "\" (" + from +
                                ", as libpq would); set [backend] user or "
                                "[auth] auth_user");
    }
  }
  if (a.auth_password.empty()) a.auth_password = config.backend.password;
  if (a.auth_database.empty()) {
    a.auth_database = config.backend.database.empty() ? "postgres" : config.backend.database;
  }
  r.finish();
}

void read_tls(const toml::table& root, Config& config, ReadContext& ctx) {
  const toml::table* t = section(root, "tls", ctx);
  SectionReader r(ctx, t, "[tls]", "[tls]", table_line(t));
  TlsConfig& s = config.tls;
  r.read_choice("client_tls_mode", s.client_tls_mode,
                {{"disable", ClientTlsMode::kDisable},
                 {"allow", ClientTlsMode::kAllow},
                 {"require", ClientTlsMode::kRequire}});
  if (r.read_string("cert_file", s.cert_file)) s.cert_file = ctx.resolve_path(s.cert_file);
  if (r.read_string("key_file", s.key_file)) s.key_file = ctx.resolve_path(s.key_file);
  if (r.read_string("ca_file", s.ca_file)) s.ca_file = ctx.resolve_path(s.ca_file);
  r.finish();
}

void read_admin(const toml::table& root, Config& config, ReadContext& ctx) {
  const toml::table* t = section(root, "admin", ctx);
  SectionReader r(ctx, t, "[admin]", "[admin]", table_line(t));
  r.read_secret("token", "token_file", config.admin.token);
  r.finish();
}

void read_metrics(const toml::table& root, Config& config, ReadContext& ctx) {
  const toml::table* t = section(root, "metrics", ctx);
  SectionReader r(ctx, t, "[metrics]", "[metrics]", table_line(t));
  MetricsConfig& m = config.metrics;
  r.read_bool("enabled", m.enabled);
  r.read_port("prometheus_port", m.prometheus_port);
  std::string address;
  if (r.read_string("prometheus_address", address)) {
    if (is_ip_literal(address)) {
      m.prometheus_address = address;
    } else {
      r.error("prometheus_address", "\"" + address +
                                        "\" is not an IP address (the port is "
                                        "prometheus_port)");
    }
  }
  std::vector<double> buckets;
  if (r.read_double_array("histogram_buckets", buckets)) {
    bool ok = !buckets.empty();
    if (!ok) r.error("histogram_buckets", "must not be empty");
    for (size_t i = 0; ok && i < buckets.size(); ++i) {
      if (!(buckets[i] > 0)) {
        r.error("histogram_buckets", "bucket bounds are seconds and must be > 0");
        ok = false;
      } else if (i > 0 && buckets[i] <= buckets[i - 1]) {
        r.error("histogram_buckets", "must be strictly increasing (element " + std::to_string(i) +
                                         " is not greater "
                                         "than element " +
                                         std::to_string(i - 1) + ")");
        ok = false;
      }
    }
    if (ok) m.histogram_buckets = std::move(buckets);
  }
  r.read_int("max_tenant_labels", m.max_tenant_labels, 0, 1'000'000);
  r.finish();
}

void read_tiers(const toml::table& root, Config& config, ReadContext& ctx) {
  const toml::table* t = section(root, "tiers", ctx);
  SectionReader outer(ctx, t, "[tiers]", "[tiers]", table_line(t));
  if (t != nullptr) {
    for (const auto& [key, node] : *t) {
      const std::string name(key.str());
      const auto* tt = node.as_table();
      if (tt == nullptr) {
        outer.error(name, "a tier is a table: write [tiers." + name + "] with its keys, got " +
                              std::string(toml_type_name(node)));
        continue;
      }
      const std::string label = "[tiers." + name + "]";
      SectionReader r(ctx, tt, label, "[tiers.<name>]", line_of(*tt));
      TierConfig tier;
      tier.name = name;
      tier.line = line_of(*tt);
      if (!valid_name(name)) {
        r.error_at_section("tier names are 1-64 letters, digits, '_' or '-'");
      }
      r.read_choice("mode", tier.mode,
                    {{"dedicated", TierMode::kDedicated}, {"shared", TierMode::kShared}});
      if (!r.has("pool_size")) {
        r.error_at_section(
            "pool_size is required (per tenant for a dedicated tier, for the "
            "whole group for a shared tier)");
      }
      r.read_int("pool_size", tier.pool_size, 1, kMaxCount);
      r.read_int("weight", tier.weight, 1, kMaxWeight);
      tier.pool_mode = config.proxy.mode;
      read_pool_mode(r, "pool_mode", tier.pool_mode);
      r.read_int("min_connections", tier.min_connections, 0, kMaxCount);
      r.read_int("expected_tenants", tier.expected_tenants, 0, kMaxCount);
      r.read_double("peak_qps", tier.peak_qps, 0, 1e12);
      r.read_double("mean_service_s", tier.mean_service_s, 0, 1e6);
      r.read_double("burst_factor", tier.burst_factor, 0, 1000);
      r.finish();
      config.tiers.push_back(std::move(tier));
    }
  }
  std::sort(config.tiers.begin(), config.tiers.end(),
            [](const TierConfig& a, const TierConfig& b) { return a.name < b.name; });
}

// Limits as read, before inherited values are filled in.
struct RawLimits {
  TenantLimits limits;
  bool has_qps_max_wait = false;
  bool has_query_timeout = false;
  bool has_pool_mode = false;
  bool has_data_path = false;
  bool has_read_write_split = false;
};

RawLimits read_limits(SectionReader& r) {
  RawLimits raw;
  TenantLimits& l = raw.limits;
  r.read_int("max_connections", l.max_connections, 0, kMaxCount);
  r.read_int("max_active", l.max_active, 0, kMaxCount);
  r.read_int("max_qps", l.max_qps, 0, kMaxRate);
  r.read_int("qps_burst", l.qps_burst, 0, kMaxRate);
  raw.has_qps_max_wait = r.read_duration("qps_max_wait", l.qps_max_wait);
  r.read_duration("max_transaction_duration", l.max_transaction_duration);
  raw.has_query_timeout = r.read_duration("query_timeout", l.query_timeout);
  raw.has_pool_mode = read_pool_mode(r, "pool_mode", l.pool_mode);
  r.read_string("tier", l.tier);
  l.weight = 0;
  r.read_int("weight", l.weight, 0, kMaxWeight);
  raw.has_data_path = read_data_path(r, "data_path", l.data_path);
  raw.has_read_write_split = r.read_bool("read_write_split", l.read_write_split);
  std::vector<std::string> cidrs;
  if (r.read_string_array("edge_cidrs", cidrs)) {
    for (const std::string& text : cidrs) {
      Result<Cidr> c = parse_cidr(text);
      if (c) {
        l.edge_cidrs.push_back(*c);
      } else {
        r.error("edge_cidrs", c.error().message);
      }
    }
  }
  r.read_int("edge_syn_rate", l.edge_syn_rate, 0, kMaxRate);
  r.read_int("edge_syn_burst", l.edge_syn_burst, 0, kMaxRate);
  r.read_string_array("allowed_users", l.allowed_users);
  return raw;
}

// Fills inherited values: tier's pool_mode and weight, [tenant_quotas] qps_max_wait,
// [connection_pool] query_timeout, [proxy] mode and data_path, [routing] read_write_split; bursts
// default to their rates.
TenantLimits resolve_limits(RawLimits raw, SectionReader& r, const Config& config) {
  TenantLimits l = std::move(raw.limits);
  const TierConfig* tier = nullptr;
  if (!l.tier.empty()) {
    tier = config.find_tier(l.tier);
    if (tier == nullptr) {
      std::vector<std::string> names;
      for (const TierConfig& t : config.tiers) names.push_back(t.name);
      std::string message = "no tier \"" + l.tier + "\" is defined";
      if (auto best = closest_match(l.tier, names)) {
        message += " (did you mean \"" + *best + "\"?)";
      } else {
        message += " (define it as [tiers." + l.tier + "])";
      }
      r.error("tier", message);
    }
  }
  if (!raw.has_pool_mode) l.pool_mode = tier ? tier->pool_mode : config.proxy.mode;
  if (l.weight == 0) l.weight = tier ? tier->weight : 1;
  if (!raw.has_qps_max_wait) l.qps_max_wait = config.tenant_quotas.qps_max_wait;
  if (!raw.has_data_path) l.data_path = config.proxy.data_path;
  if (!raw.has_query_timeout) l.query_timeout = config.connection_pool.query_timeout;
  if (!raw.has_read_write_split) l.read_write_split = config.routing.read_write_split;
  if (l.qps_burst == 0) l.qps_burst = l.max_qps;
  if (l.edge_syn_burst == 0) l.edge_syn_burst = l.edge_syn_rate;
  return l;
}

void read_tenant_quotas(const toml::table& root, Config& config, ReadContext& ctx) {
  const toml::table* t = section(root, "tenant_quotas", ctx);
  SectionReader r(ctx, t, "[tenant_quotas]", "[tenant_quotas]", table_line(t));
  TenantQuotaConfig& q = config.tenant_quotas;
  r.read_bool("enabled", q.enabled);
  std::string identifier;
  if (r.read_string("identifier", identifier)) {
    constexpr std::string_view kParam = "parameter:";
    if (identifier == "application_name") {
      q.identifier = {TenantIdentifierKind::kApplicationName, "application_name"};
    } else if (identifier == "user") {
      q.identifier = {TenantIdentifierKind::kUser, "user"};
    } else if (identifier == "database") {
      q.identifier = {TenantIdentifierKind::kDatabase, "database"};
    } else if (identifier.rfind(kParam, 0) == 0 && identifier.size() > kParam.size()) {
      q.identifier = {TenantIdentifierKind::kParameter, identifier.substr(kParam.size())};
    } else {
      r.error("identifier",
              "must be \"application_name\", \"user\", \"database\" or "
              "\"parameter:<startup parameter name>\", got \"" +
                  identifier + "\"");
    }
  } else {
    q.identifier = {TenantIdentifierKind::kApplicationName, "application_name"};
  }
  std::string default_tenant;
  if (r.read_string("default_tenant", default_tenant)) {
    if (default_tenant.empty()) {
      r.error("default_tenant", "must not be empty");
    } else {
      q.default_tenant = default_tenant;
    }
  }
  r.read_duration("qps_max_wait", q.qps_max_wait);
  r.read_int("max_tenants", q.max_tenants, 1, 10000000);

  const toml::table* dt = r.sub_table("default");
  {
    SectionReader dr(ctx, dt, "[tenant_quotas.default]", "[tenant_quotas.default]", table_line(dt));
    RawLimits raw = read_limits(dr);
    q.default_limits = resolve_limits(std::move(raw), dr, config);
    dr.finish();
  }

  if (const toml::array* rules = r.table_array("limits")) {
    for (size_t i = 0; i < rules->size(); ++i) {
      const toml::table& rt = *(*rules)[i].as_table();
      const std::string label = "[[tenant_quotas.limits]] #" + std::to_string(i + 1);
      SectionReader rr(ctx, &rt, label, "[[tenant_quotas.limits]]", line_of(rt));
      TenantRule rule;
      rule.line = line_of(rt);
      if (!rr.has("tenant_pattern")) {
        rr.error_at_section("tenant_pattern is required (a glob such as \"tenant_*\")");
      } else if (rr.read_string("tenant_pattern", rule.tenant_pattern) &&
                 rule.tenant_pattern.empty()) {
        rr.error("tenant_pattern", "must not be empty");
      }
      RawLimits raw = read_limits(rr);
      rule.limits = resolve_limits(std::move(raw), rr, config);
      rr.finish();
      q.limits.push_back(std::move(rule));
    }
  }
  r.finish();
}

void read_edge(const toml::table& root, Config& config, ReadContext& ctx) {
  const toml::table* t = section(root, "edge", ctx);
  SectionReader r(ctx, t, "[edge]", "[edge]", table_line(t));
  EdgeConfig& e = config.edge;
  r.read_bool("enabled", e.enabled);
  r.read_string("interface", e.interface);
  std::string vip;
  if (r.read_string("vip", vip) && !vip.empty()) {
    Result<HostPort> hp = parse_host_port(vip, true);
    if (hp) {
      e.vip = *hp;
    } else {
      r.error("vip", hp.error().message);
    }
  }
  r.read_choice("xdp_mode", e.xdp_mode, {{"native", XdpMode::kNative}, {"skb", XdpMode::kSkb}});
  r.read_int("global_syn_rate", e.global_syn_rate, 0, kMaxRate);
  r.read_int("global_syn_burst", e.global_syn_burst, 0, kMaxRate);
  if (e.global_syn_burst == 0) e.global_syn_burst = e.global_syn_rate;
  r.finish();
}

void read_vip(const toml::table& root, Config& config, ReadContext& ctx) {
  const toml::table* t = section(root, "vip", ctx);
  SectionReader r(ctx, t, "[vip]", "[vip]", table_line(t));
  VipConfig& v = config.vip;
  std::string address;
  if (r.read_string("address", address)) {
    if (address.empty() || is_ip_literal(address)) {
      v.address = address;
    } else {
      r.error("address", "\"" + address + "\" is not an IP address (the port is [vip] port)");
    }
  }
  r.read_port("port", v.port);
  r.read_choice("steering", v.steering, {{"sk_lookup", std::string("sk_lookup")}});
  r.finish();
}

void check_top_level(const toml::table& root, ReadContext& ctx) {
  for (const auto& [key, node] : root) {
    const std::string name(key.str());
    if (std::find(kSections.begin(), kSections.end(), name) != kSections.end()) continue;
    const int line = static_cast<int>(key.source().begin.line);
    if (node.is_table() || node.is_array_of_tables()) {
      std::string message = "unknown section [" + name + "]";
      if (auto best = closest_match(name, kSections)) message += " (did you mean [" + *best + "]?)";
      ctx.diag().error(line, message);
      continue;
    }
    ctx.diag().error(line,
                     "key \"" + name + "\" is outside any section" + ctx.belongs_hint(name, ""));
  }
}

}  // namespace

void parse_sections(const toml::table& root, Config& config, ReadContext& ctx) {
  read_proxy(root, config, ctx);
  read_backend(root, config, ctx);
  read_routing(root, config, ctx);
  read_connection_pool(root, config, ctx);
  read_pool_mode_section(root, config, ctx);
  read_auth(root, config, ctx);
  read_tls(root, config, ctx);
  read_admin(root, config, ctx);
  read_metrics(root, config, ctx);
  read_tiers(root, config, ctx);
  read_tenant_quotas(root, config, ctx);
  read_edge(root, config, ctx);
  read_vip(root, config, ctx);
  read_fleet(root, config, ctx);
  check_top_level(root, ctx);
  ctx.report_unknown_keys();
}

}  // namespace helios::config
