// GET /api/v1/fleet: this instance, the live instances, this instance's shares, and cancel
// forwarding (peer numbers, addresses, counts).
#include "ops/admin_json.h"

namespace helios::ops {

nlohmann::json fleet_json(const ProxySnapshot& s) {
  using nlohmann::json;
  if (!s.fleet) return json{{"enabled", false}};
  const fleet::FleetView& v = *s.fleet;
  json shares = json::array();
  for (const fleet::ShareView& sv : v.shares)
    shares.push_back({{"tenant", sv.tenant},
                      {"limit_name", sv.limit_kind == 'c'   ? "max_connections"
                                     : sv.limit_kind == 'a' ? "max_active"
                                     : sv.limit_kind == 'q' ? "max_qps"
                                                            : "pool_max_connections"},
                      {"limit", sv.limit},
                      {"share", sv.share},
                      {"used", sv.used},
                      {"want", sv.want}});
  json peers = json::array();
  for (const fleet::PeerAddress& p : v.peers)
    peers.push_back(
        {{"peer", p.peer}, {"instance_id", p.instance_id}, {"cancel_address", p.address}});
  json cancels = {{"forwarded", v.cancels.forwarded},
                  {"received", v.cancels.received},
                  {"dropped_unknown_peer", v.cancels.unknown_peer},
                  {"dropped_busy", v.cancels.busy},
                  {"dropped_unreachable", v.cancels.unreachable}};
  return json{{"enabled", true},
              {"instance_id", v.instance_id},
              {"redis", v.redis},
              {"degraded", v.degraded},
              {"live_instances", v.live_instances},
              {"instances", v.instances},
              {"renewals", v.renewals},
              {"renewal_failures", v.failures},
              {"last_renewal_ms", v.last_renewal_ms},
              {"shares", shares},
              {"peer", v.peer},
              {"cancel_address", v.cancel_address},
              {"peers", peers},
              {"cancels", cancels}};
}

}  // namespace helios::ops
