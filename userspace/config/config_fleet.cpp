// [fleet]: Redis URL, instance identity and the lease intervals (docs/fleet.md).
#include <unistd.h>

#include <charconv>

#include "config/config_reader.h"

namespace helios::config {
namespace {

Status parse_int(std::string_view text, int64_t min, int64_t max, int64_t& out,
                 std::string_view what) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max)
    return Error::invalid(std::string(what) + " \"" + std::string(text) + "\" is not a number in " +
                          std::to_string(min) + ".." + std::to_string(max));
  out = v;
  return {};
}

std::string default_instance_id() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') std::snprintf(host, 8, "host");
  return std::string(host) + "-" + std::to_string(getpid());
}

}  // namespace

Status parse_redis_url(std::string_view url, FleetConfig& f) {
  constexpr std::string_view kPlain = "redis://", kTls = "rediss://";
  std::string_view rest;
  if (url.substr(0, kTls.size()) == kTls) {
    f.redis_tls = true;
    rest = url.substr(kTls.size());
  } else if (url.substr(0, kPlain.size()) == kPlain) {
    f.redis_tls = false;
    rest = url.substr(kPlain.size());
  } else {
    return Error::invalid("\"" + std::string(url) +
                          "\" is not a redis[s]://[user:password@]host:port[/db] URL");
  }
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = cred.find(':');
    if (colon == std::string_view::npos) {
      f.redis_password = std::string(cred);  // redis://password@host (Redis before ACLs)
    } else {
      f.redis_user = std::string(cred.substr(0, colon));
      f.redis_password = std::string(cred.substr(colon + 1));
    }
  }
  std::string_view hostport = rest;
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty())
      if (auto s = parse_int(db, 0, 1000000, f.redis_db, "database"); !s) return s;
  }
  std::string_view host = hostport, port_text;
  if (!hostport.empty() && hostport.front() == '[') {  // [v6addr]:port
    size_t close = hostport.find(']');
    if (close == std::string_view::npos)
      return Error::invalid("\"" + std::string(url) + "\" has an unclosed [");
    host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':')
        return Error::invalid("\"" + std::string(url) + "\": expected :port after ]");
      port_text = hostport.substr(close + 2);
    }
  } else if (size_t colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    port_text = hostport.substr(colon + 1);
  }
  if (!port_text.empty() || hostport.ends_with(':')) {
    int64_t port = 0;
    if (auto s = parse_int(port_text, 1, 65535, port, "port"); !s) return s;
    f.redis_port = uint16_t(port);
  }
  if (host.empty()) return Error::invalid("\"" + std::string(url) + "\" has no host");
  f.redis_host = std::string(host);
  return {};
}

void read_fleet(const toml::table& root, Config& config, ReadContext& ctx) {
  auto it = root.find("fleet");
  const toml::table* t = it == root.end() ? nullptr : it->second.as_table();
  if (it != root.end() && !t) {
    ctx.diag().error(int(it->first.source().begin.line), "fleet must be a section [fleet]");
    return;
  }
  SectionReader r(ctx, t, "[fleet]", "[fleet]", t ? line_of(*t) : 0);
  FleetConfig& f = config.fleet;
  f.enabled = r.present();
  std::string url;
  if (r.read_string("redis_url", url)) {
    if (auto s = parse_redis_url(url, f); !s) r.error("redis_url", s.error().message);
  } else if (f.enabled) {
    r.error_at_section("redis_url is required (redis[s]://[user:password@]host:port[/db])");
  }
  std::string password;
  if (r.read_secret("redis_password", "redis_password_file", password)) f.redis_password = password;
  if (r.read_string("instance_id", f.instance_id) && f.instance_id.size() > 128)
    r.error("instance_id", "is longer than 128 bytes");
  if (f.enabled && f.instance_id.empty()) f.instance_id = default_instance_id();
  r.read_string("key_prefix", f.key_prefix);
  if (r.read_string("redis_tls_ca_file", f.redis_tls_ca_file) && !f.redis_tls)
    r.error("redis_tls_ca_file", "is set but redis_url is not rediss://");
  r.read_bool("redis_tls_verify", f.redis_tls_verify);
  r.read_duration("renew_interval", f.renew_interval);
  r.read_duration("instance_ttl", f.instance_ttl);
  r.read_duration("admission_wait", f.admission_wait);
  r.read_duration("redis_timeout", f.redis_timeout);
  r.read_host_port("cancel_address", f.cancel_address, false);
  if (f.renew_interval < 10 * kNanosPerMilli || f.renew_interval > 60 * kNanosPerSec)
    r.error("renew_interval", "must be within 10ms..60s");
  if (f.instance_ttl < 2 * f.renew_interval)
    r.error("instance_ttl",
            "must be at least twice renew_interval (a live instance renews "
            "its heartbeat once per renew_interval)");
  if (f.redis_timeout <= 0) r.error("redis_timeout", "must be positive");
  r.finish();
}

}  // namespace helios::config
