// Config enum spellings and the small Config helpers.
#include "config/config.h"

namespace helios::config {

std::string_view to_string(PoolMode v) {
  switch (v) {
    case PoolMode::kSession:
      return "session";
    case PoolMode::kTransaction:
      return "transaction";
    case PoolMode::kStatement:
      return "statement";
  }
  return "?";
}

std::string_view to_string(LogLevel v) {
  switch (v) {
    case LogLevel::kTrace:
      return "trace";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      return "off";
  }
  return "?";
}

std::string_view to_string(WorkerScaling v) {
  return v == WorkerScaling::kFixed ? "fixed" : "load";
}

std::string_view to_string(DataPathMode v) {
  switch (v) {
    case DataPathMode::kUserspace:
      return "userspace";
    case DataPathMode::kKernel:
      return "kernel";
    case DataPathMode::kAuto:
      return "auto";
  }
  return "?";
}

std::string_view to_string(BypassSetting v) {
  switch (v) {
    case BypassSetting::kAuto:
      return "auto";
    case BypassSetting::kOn:
      return "true";
    case BypassSetting::kOff:
      return "false";
  }
  return "?";
}

std::string_view to_string(SslMode v) {
  switch (v) {
    case SslMode::kDisable:
      return "disable";
    case SslMode::kPrefer:
      return "prefer";
    case SslMode::kRequire:
      return "require";
    case SslMode::kVerifyFull:
      return "verify-full";
  }
  return "?";
}

std::string_view to_string(AuthType v) {
  switch (v) {
    case AuthType::kScramSha256:
      return "scram-sha-256";
    case AuthType::kMd5:
      return "md5";
    case AuthType::kTrust:
      return "trust";
  }
  return "?";
}

std::string_view to_string(ClientTlsMode v) {
  switch (v) {
    case ClientTlsMode::kDisable:
      return "disable";
    case ClientTlsMode::kAllow:
      return "allow";
    case ClientTlsMode::kRequire:
      return "require";
  }
  return "?";
}

std::string_view to_string(PreparedStatementMode v) {
  switch (v) {
    case PreparedStatementMode::kDisable:
      return "disable";
    case PreparedStatementMode::kTrack:
      return "track";
    case PreparedStatementMode::kNamed:
      return "named";
  }
  return "?";
}

std::string_view to_string(PinPolicy v) {
  switch (v) {
    case PinPolicy::kPin:
      return "pin";
    case PinPolicy::kError:
      return "error";
  }
  return "?";
}

std::string_view to_string(TierMode v) {
  switch (v) {
    case TierMode::kDedicated:
      return "dedicated";
    case TierMode::kShared:
      return "shared";
  }
  return "?";
}

std::string_view to_string(XdpMode v) {
  switch (v) {
    case XdpMode::kNative:
      return "native";
    case XdpMode::kSkb:
      return "skb";
  }
  return "?";
}

const TierConfig* Config::find_tier(std::string_view name) const {
  for (const TierConfig& t : tiers) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

bool Config::operator==(const Config& o) const {
  return proxy == o.proxy && backend == o.backend && routing == o.routing &&
         connection_pool == o.connection_pool && auth == o.auth && tls == o.tls &&
         admin == o.admin && metrics == o.metrics && tenant_quotas == o.tenant_quotas &&
         tiers == o.tiers && edge == o.edge && vip == o.vip && fleet == o.fleet;
}

}  // namespace helios::config
