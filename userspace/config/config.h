// The proxy configuration: TOML (toml++) parsed into validated plain structs.
//
// Canonical form: the sections of seed 000 ([proxy], [backend], [connection_pool],
// [tenant_quotas], [metrics]) plus [auth], [tls], [admin], [tiers.<name>], [edge], [vip].
// The tutorial's [pool_mode] section (seed 001) is accepted and mapped onto the canonical keys.
// Every value here is resolved: defaults filled in, "inherit" replaced by the inherited value,
// secrets read from files or the environment. See config/helios-proxy.toml for the reference.
//
// Config is a plain value type (copyable, ==) so hot reload can load a new one and diff.
// Secrets (passwords, tokens) are held as plain strings: never log them.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace helios::config {

enum class PoolMode : uint8_t { kSession, kTransaction, kStatement };
enum class LogLevel : uint8_t { kTrace, kDebug, kInfo, kWarn, kError, kOff };
enum class DataPathMode : uint8_t { kUserspace, kKernel, kAuto };
enum class WorkerScaling : uint8_t { kLoad, kFixed };
enum class SslMode : uint8_t { kDisable, kPrefer, kRequire, kVerifyFull };
enum class AuthType : uint8_t { kScramSha256, kMd5, kTrust };
enum class ClientTlsMode : uint8_t { kDisable, kAllow, kRequire };
enum class PreparedStatementMode : uint8_t { kDisable, kTrack, kNamed };
enum class PinPolicy : uint8_t { kPin, kError };
enum class TierMode : uint8_t { kDedicated, kShared };
enum class XdpMode : uint8_t { kNative, kSkb };
enum class TenantIdentifierKind : uint8_t { kApplicationName, kUser, kDatabase, kParameter };
// [proxy] same_host_bypass: "auto" (attach where it is safe, proxy/bypass_policy.h), true, false.
enum class BypassSetting : uint8_t { kAuto, kOn, kOff };

// The spelling used in the config file ("transaction", "scram-sha-256", "verify-full", ...).
std::string_view to_string(PoolMode v);
std::string_view to_string(LogLevel v);
std::string_view to_string(DataPathMode v);
std::string_view to_string(WorkerScaling v);
std::string_view to_string(SslMode v);
std::string_view to_string(AuthType v);
std::string_view to_string(ClientTlsMode v);
std::string_view to_string(PreparedStatementMode v);
std::string_view to_string(PinPolicy v);
std::string_view to_string(TierMode v);
std::string_view to_string(XdpMode v);
std::string_view to_string(BypassSetting v);  // "auto", "true", "false"

// "host:port" or "[v6addr]:port". host is stored without brackets.
struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string to_string() const;  // brackets an IPv6 host again
  bool operator==(const HostPort&) const = default;
};

// An IPv4 or IPv6 prefix ("10.1.0.0/16", "2001:db8::/32"); host bits are zero.
struct Cidr {
  int family = 0;                  // AF_INET or AF_INET6
  std::array<uint8_t, 16> addr{};  // network byte order; IPv4 uses the first 4 bytes
  uint8_t prefix_len = 0;
  std::string to_string() const;
  bool operator==(const Cidr&) const = default;
};

struct ProxyConfig {
  HostPort listen_address{"0.0.0.0", 5432};
  HostPort admin_listen_address{"127.0.0.1", 9090};
  PoolMode mode = PoolMode::kTransaction;
  LogLevel log_level = LogLevel::kInfo;
  int workers = 0;  // 0 = one per core
  // "load" (default): `workers` is a ceiling and only as many are awake as the load needs
  // (clients move between workers between transactions; docs/architecture.md, "Workers that
  // follow the load"). "fixed": all of them, always.
  WorkerScaling worker_scaling = WorkerScaling::kLoad;
  // Receive buffers of 16 KiB in each worker's io_uring ring (a power of two, 64-32768): the
  // memory a worker can receive into at once (4096: 64 MB, touched as traffic needs it). Read at
  // start; a reload leaves it as it was.
  int64_t receive_buffers = 4096;
  double worker_busy_target = 0.7;  // "load": wake another worker when the awake ones are this busy
  std::string instance = "default";  // BPF pins live in /sys/fs/bpf/helios/<instance>
  DataPathMode data_path = DataPathMode::kUserspace;
  Nanos startup_timeout = 10 * kNanosPerSec;  // startup + auth must finish within it
  // Connections not yet authenticated from one source address (IPv6: its /64), across
  // workers; more are refused at accept. 0 = unlimited.
  int64_t max_unauthenticated_per_source = 256;
  Nanos drain_timeout = 30 * kNanosPerSec;
  // Kernel shortcut for hops between two sockets on this host (app -> proxy, proxy -> a local
  // PostgreSQL): sockops + sk_msg, see docs/datapath.md. "auto": only where it is safe
  // (proxy/bypass_policy.h); off when the kernel refuses it.
  BypassSetting same_host_bypass = BypassSetting::kAuto;
  bool operator==(const ProxyConfig&) const = default;
};

struct BackendConfig {
  std::string host = "localhost";  // or a unix socket directory starting with "/"
  uint16_t port = 5432;
  std::string database;          // auth_query runs here; default database when a client sends none
  std::string user;              // auth user for auth_query lookups
  std::string password;          // SECRET: resolved from password, password_file or ${ENV}
  int64_t min_connections = 0;   // warm, per pool
  int64_t max_connections = 20;  // per pool
  Nanos connection_timeout = 5 * kNanosPerSec;
  Nanos max_lifetime = 3600 * kNanosPerSec;  // alias connection_lifetime
  double lifetime_jitter = 0.2;              // fraction in [0,1) subtracted at random
  Nanos server_check_delay = 0;  // idle longer than this: poll() for a death notice first
  // TCP_USER_TIMEOUT on backend sockets: data PostgreSQL's host leaves unacknowledged this long
  // closes the backend (its client gets an error) instead of TCP retrying for ~15 min. 0 = off.
  Nanos tcp_user_timeout = 30 * kNanosPerSec;
  int64_t db_max_connections = 0;  // 0 = unknown (no budget check)
  int64_t reserved_connections = 0;
  SslMode sslmode = SslMode::kDisable;
  std::string sslrootcert;
  // [backend] hosts: every PostgreSQL host, primary and replicas in any order (empty: host/port
  // is the one host). Roles are discovered by the health checker (pool/health_checker.h). With
  // hosts set, host and port are its first entry (auth_query and the bypass use them).
  std::vector<HostPort> hosts;
  std::vector<HostPort> host_list() const {
    return hosts.empty() ? std::vector<HostPort>{HostPort{host, port}} : hosts;
  }
  Nanos health_check_interval = 1 * kNanosPerSec;
  Nanos ban_time = 10 * kNanosPerSec;        // a host that failed its check sits out this long
  Nanos max_replica_lag = 5 * kNanosPerSec;  // replay delay above it: no reads routed there
  int64_t max_replica_lag_bytes = 16 << 20;
  // While no primary is known, a transaction that needs one waits this long for one (then 08006).
  Nanos failover_timeout = 30 * kNanosPerSec;  // WAL bytes behind the primary above it: same
  bool unix_socket() const { return !host.empty() && host.front() == '/'; }
  bool operator==(const BackendConfig&) const = default;
};

// [routing]: read/write split across the hosts' roles (proxy/backend_route.h).
struct RoutingConfig {
  bool read_write_split = false;
  // After a client's lease on the primary ends, its reads go to a replica only once that replica
  // has replayed the primary's WAL position measured by a health check started after that end.
  bool read_your_writes = true;
  bool operator==(const RoutingConfig&) const = default;
};

struct ConnectionPoolConfig {
  double multiplexing_ratio = 0;  // 0 = not set; advisory target clients per backend
  Nanos idle_timeout = 600 * kNanosPerSec;
  int64_t max_client_connections = 10000;  // global
  Nanos acquire_timeout = 5 * kNanosPerSec;
  std::string server_reset_query = "DISCARD ALL";  // "" disables
  Nanos statement_timeout = 0;                     // 0 = none
  // A client idle inside a transaction this long gets FATAL 25P03 and its backend is rolled
  // back and returned to the pool. 0 = never.
  Nanos idle_transaction_timeout = 60 * kNanosPerSec;
  Nanos client_idle_timeout = 0;
  // A statement unanswered this long is cancelled (CancelRequest; the client gets 57014).
  // 0 = never. Tenant rules may override it.
  Nanos query_timeout = 0;
  PreparedStatementMode prepared_statement_mode = PreparedStatementMode::kTrack;
  int64_t prepared_statement_cache_size = 1024;  // per backend
  // Statement texts ("track") the proxy holds for connected clients, whole process, in MiB;
  // past it a new statement stays on its backend as in "named" mode. 0 = no limit.
  int64_t prepared_statement_memory_mb = 256;
  PinPolicy pin_policy = PinPolicy::kPin;
  std::vector<std::string> track_parameters;  // extra parameters carried across backends
  bool operator==(const ConnectionPoolConfig&) const = default;
};

struct AuthConfig {
  AuthType type = AuthType::kScramSha256;
  std::string auth_file;  // "" = none; userlist.txt format
  // Read by name or position (pg/role_record.h): user, password[, valid-until[, can-login]].
  std::string auth_query =
      "SELECT rolname, rolpassword, rolvaliduntil, rolcanlogin FROM pg_catalog.pg_authid "
      "WHERE rolname = $1";
  std::string auth_user;      // resolved: [backend].user, else $PGUSER, else the OS user (libpq)
  std::string auth_password;  // SECRET; resolved: [backend] password when not set
  std::string auth_database;  // resolved: [backend].database, else "postgres"
  // 0 = every login reads the catalog (PostgreSQL's semantics). > 0: a record fetched this
  // recently is reused; a failed login with one older than 1 s makes the next login refetch.
  Nanos auth_cache_ttl = 0;
  bool operator==(const AuthConfig&) const = default;
};

struct TlsConfig {
  ClientTlsMode client_tls_mode = ClientTlsMode::kDisable;
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  bool operator==(const TlsConfig&) const = default;
};

struct AdminConfig {
  std::string token;  // SECRET; "" = no auth on the admin API
  bool operator==(const AdminConfig&) const = default;
};

struct MetricsConfig {
  bool enabled = true;
  uint16_t prometheus_port = 9091;
  std::string prometheus_address = "127.0.0.1";
  std::vector<double> histogram_buckets{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};
  int64_t max_tenant_labels = 100;  // beyond it tenants are reported as tenant_id="other"
  bool operator==(const MetricsConfig&) const = default;
};

struct TenantIdentifier {
  TenantIdentifierKind kind = TenantIdentifierKind::kApplicationName;
  std::string parameter;  // the startup parameter name (application_name, user, database, or
                          // the <name> of "parameter:<name>")
  bool operator==(const TenantIdentifier&) const = default;
};

// Limits of one tenant rule, or of tenants that match no rule. Values are resolved: 0 means
// unlimited where noted, inherited values are filled in.
struct TenantLimits {
  int64_t max_connections = 0;         // client connections; 0 = unlimited
  int64_t max_active = 0;              // concurrent backend leases; 0 = unlimited
  int64_t max_qps = 0;                 // 0 = unlimited
  int64_t qps_burst = 0;               // resolved: max_qps when not set
  Nanos qps_max_wait = 0;              // resolved: [tenant_quotas] qps_max_wait when not set
  Nanos max_transaction_duration = 0;  // 0 = unlimited
  Nanos query_timeout = 0;             // resolved: [connection_pool] query_timeout when not set
  PoolMode pool_mode = PoolMode::kTransaction;        // resolved: tier's, else [proxy] mode
  std::string tier;                                   // "" = the default pool
  int64_t weight = 1;                                 // resolved: tier's weight, else 1
  DataPathMode data_path = DataPathMode::kUserspace;  // resolved: [proxy] data_path
  bool read_write_split = false;                      // resolved: [routing] read_write_split
  std::vector<Cidr> edge_cidrs;
  int64_t edge_syn_rate = 0;   // SYN/s for the XDP guard; 0 = no per-tenant bucket
  int64_t edge_syn_burst = 0;  // resolved: edge_syn_rate when not set
  // Globs of the authenticated users that may claim a tenant of this rule; empty = any user.
  // Binds a client-chosen tenant name (application_name) to who logged in.
  std::vector<std::string> allowed_users;
  bool operator==(const TenantLimits&) const = default;
};

struct TenantRule {
  std::string tenant_pattern;  // glob: * ? [abc] [a-z] [!x], \ escapes
  TenantLimits limits;
  int line = 0;  // source line of the rule's header (for messages); not part of ==
  bool operator==(const TenantRule& o) const {
    return tenant_pattern == o.tenant_pattern && limits == o.limits;
  }
};

struct TenantQuotaConfig {
  bool enabled = false;
  TenantIdentifier identifier;
  std::string default_tenant = "default";  // when the identifying parameter is absent or empty
  // Tenants the registry keeps (fixed at start). Past it, tenants with no client connections
  // that no rule names exactly are evicted, least recently used first.
  int64_t max_tenants = 100000;
  Nanos qps_max_wait = 100 * kNanosPerMilli;
  TenantLimits default_limits;     // [tenant_quotas.default]
  std::vector<TenantRule> limits;  // [[tenant_quotas.limits]] in file order
  bool operator==(const TenantQuotaConfig&) const = default;
};

struct TierConfig {
  std::string name;
  TierMode mode = TierMode::kShared;
  int64_t pool_size = 0;  // per tenant (dedicated) or for the whole group (shared)
  int64_t weight = 1;     // fair-queue weight
  PoolMode pool_mode = PoolMode::kTransaction;  // resolved: [proxy] mode when not set
  int64_t min_connections = 0;
  int64_t expected_tenants = 0;  // dedicated: how many tenant pools to budget for
  // Planner inputs (0 = not given).
  double peak_qps = 0;
  double mean_service_s = 0;
  double burst_factor = 0;
  int line = 0;  // not part of ==
  bool operator==(const TierConfig& o) const {
    return name == o.name && mode == o.mode && pool_size == o.pool_size && weight == o.weight &&
           pool_mode == o.pool_mode && min_connections == o.min_connections &&
           expected_tenants == o.expected_tenants && peak_qps == o.peak_qps &&
           mean_service_s == o.mean_service_s && burst_factor == o.burst_factor;
  }
};

struct EdgeConfig {
  bool enabled = false;
  std::string interface;
  std::optional<HostPort> vip;  // "ADDR:PORT", an IP literal
  XdpMode xdp_mode = XdpMode::kNative;
  int64_t global_syn_rate = 0;   // 0 = off
  int64_t global_syn_burst = 0;  // resolved: global_syn_rate when not set
  bool operator==(const EdgeConfig&) const = default;
};

struct VipConfig {
  std::string address;  // "" = no VIP; an IP literal
  uint16_t port = 5432;
  std::string steering = "sk_lookup";
  bool operator==(const VipConfig&) const = default;
};

// [fleet]: quotas shared by every instance through Redis (docs/fleet.md). Absent = this
// instance enforces its quotas alone, as without the section.
struct FleetConfig {
  bool enabled = false;               // the section is present
  std::string redis_host;             // from redis_url
  uint16_t redis_port = 6379;         // from redis_url
  int64_t redis_db = 0;               // from redis_url (/db)
  std::string redis_user;             // from redis_url (user:password@); "" = the default user
  std::string redis_password;         // SECRET: redis_url's, or redis_password(_file) which wins
  bool redis_tls = false;             // rediss://: TLS to Redis (certificate and host verified)
  std::string redis_tls_ca_file;      // roots for rediss://; "" = the system's
  bool redis_tls_verify = true;       // false: encrypt only (no certificate or host check)
  std::string instance_id;            // resolved: "<host name>-<pid>" when not set
  std::string key_prefix = "helios";  // Redis keys are "<prefix>:..."
  Nanos renew_interval = 200 * kNanosPerMilli;   // one lease renewal per instance per interval
  Nanos instance_ttl = 2000 * kNanosPerMilli;    // a silent instance's slices return after it
  Nanos admission_wait = 1000 * kNanosPerMilli;  // a login over the local slice waits this long
  Nanos redis_timeout = 500 * kNanosPerMilli;    // connect and command timeout
  HostPort cancel_address;  // where other instances forward cancels; host "" = listen_address
  bool operator==(const FleetConfig&) const = default;
};

// Parses redis[s]://[user:password@]host:port[/db] into f (host, port, db, user, password, tls).
Status parse_redis_url(std::string_view url, FleetConfig& f);

struct Config {
  ProxyConfig proxy;
  BackendConfig backend;
  RoutingConfig routing;
  ConnectionPoolConfig connection_pool;
  AuthConfig auth;
  TlsConfig tls;
  AdminConfig admin;
  MetricsConfig metrics;
  TenantQuotaConfig tenant_quotas;
  std::vector<TierConfig> tiers;  // sorted by name
  EdgeConfig edge;
  VipConfig vip;
  FleetConfig fleet;

  std::vector<std::string> warnings;  // "file:line: ..." (not part of ==)
  std::string source;                 // file name or source name (not part of ==)
  // What the file itself set (not part of ==), for check_serving().
  struct Shape {
    bool empty = true;            // no key or section at all
    bool backend = false;         // a [backend] section
    bool listen_address = false;  // [proxy] listen_address
  } shape;

  const TierConfig* find_tier(std::string_view name) const;
  // Compares settings only (not warnings or source): equal configs need no reload.
  bool operator==(const Config& o) const;
};

// ---- Loading ---------------------------------------------------------------------------------

using GetEnv = std::function<std::optional<std::string>(std::string_view)>;
// Returns a secret file's whole content (the loader keeps the first line).
using ReadSecretFile = std::function<Result<std::string>(const std::string& path)>;

struct ParseOptions {
  std::string source_name = "<config>";  // used in "source:line: ..." messages
  GetEnv getenv;                         // default (empty): the process environment
  ReadSecretFile read_file;              // default (empty): read from disk
  std::string base_dir;                  // relative secret/TLS paths resolve against it ("" = cwd)
  // false: ${VAR} that is unset becomes "" and secret files are not read (each with a warning),
  // so a config can be checked on a machine without its secrets.
  bool resolve_secrets = true;
  // The OS user the proxy runs as (libpq's default user name). Default (empty): getpwuid.
  std::function<std::string()> os_user;
};

GetEnv process_environment();

// A config the proxy can serve with: refuses a file with no settings at all (an empty or
// truncated file), and, with `running` (a reload), a file that lacks the [backend] section or
// the [proxy] listen_address the running config's file had. Messages name the file.
Status check_serving(const Config& next, const Config* running);
Result<std::string> read_file_from_disk(const std::string& path);

// Parses and validates. On failure the Error message holds every problem found, one per line,
// each "source:line: what is wrong", sorted by line.
Result<Config> parse_config(std::string_view toml, const ParseOptions& options);
Result<Config> parse_config(std::string_view toml, std::string_view source_name,
                            const GetEnv& getenv);
// Reads the file and parses it; relative secret paths resolve against the file's directory.
Result<Config> load_config_file(const std::string& path);
Result<Config> load_config_file(const std::string& path, ParseOptions options);

// ---- Connection budget (seed 003) ------------------------------------------------------------

struct BudgetLine {
  std::string what;  // "tier premium (dedicated)", "default pool"
  int64_t pool_size = 0;
  int64_t pools = 0;
  int64_t connections = 0;  // pool_size * pools
};

struct ConnectionBudget {
  std::vector<BudgetLine> lines;
  int64_t needed = 0;    // sum of lines
  int64_t db_max = 0;    // [backend] db_max_connections (0 = unknown)
  int64_t reserved = 0;  // [backend] reserved_connections
  int64_t available() const { return db_max - reserved; }
  bool checked() const { return db_max > 0; }
  bool fits() const { return !checked() || needed <= available(); }
  // "pools need 204 connections but the database allows 200 - 20 reserved = 180: over by 24"
  // or "pools need 174 of 180 connections (200 - 20 reserved)".
  std::string summary() const;
  // "tier premium (dedicated): 6 x 25 = 150, tier free (shared): 16, default pool: 20"
  std::string breakdown() const;
};

// Every tier pool (dedicated: pool_size * expected_tenants, shared: pool_size) plus
// [backend] max_connections for the default pool.
ConnectionBudget compute_connection_budget(const Config& config);

}  // namespace helios::config
