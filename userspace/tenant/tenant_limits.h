// Per-tenant limits as plain values. The control plane maps [tenant_quotas] rules (and tiers)
// into these; helios::tenant applies them without knowing the config format.
#pragma once

#include <cstdint>
#include <string>

#include "common/clock.h"

namespace helios::tenant {

struct TenantLimits {
  uint32_t max_connections = 0;        // client connections; 0 = unlimited
  uint32_t max_active = 0;             // concurrent backend leases ("user pool"); 0 = unlimited
  double max_qps = 0;                  // token rate, queries/s; 0 = unlimited
  double qps_burst = 0;                // bucket capacity; 0 = max_qps (one second's worth)
  Nanos qps_max_wait = 0;              // how long a query may wait for a token (caller's policy)
  Nanos max_transaction_duration = 0;  // 0 = unlimited
  uint32_t weight = 1;                 // fair-queue weight (0 is treated as 1)
  int8_t pool_mode_override = -1;      // -1 = inherit; otherwise the pool layer's mode value
  int8_t data_path_override = -1;      // -1 = inherit [proxy] data_path; else config::DataPathMode
  int16_t tier = -1;                   // the control plane's tier index; -1 = none/default

  bool operator==(const TenantLimits&) const = default;
};

// One [[tenant_quotas.limits]] rule: a glob (see glob.h) and the limits it gives.
struct TenantRule {
  std::string pattern;
  TenantLimits limits;
};

}  // namespace helios::tenant
