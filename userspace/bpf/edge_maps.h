// The edge guard's maps as one typed unit: writes an EdgeSpec into them (the hot-reload path,
// no detach) and reads per-tenant counters back. Works on a freshly loaded skeleton (tests,
// attach) and on the pins of a running guard (heliosctl, the proxy after a restart).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "bpf/edge_spec.h"
#include "bpf/map_view.h"
#include "bpf/pin_dir.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "helios/bpf_abi.h"

struct xdp_guard;  // helios/xdp_guard.skel.h

namespace helios::bpf {

class EdgeMaps {
 public:
  // Views over a loaded skeleton's maps (the skeleton keeps ownership).
  static Result<EdgeMaps> of(const xdp_guard& skel);
  // Opens the pins of a running guard; this object owns the fds.
  static Result<EdgeMaps> open_pinned(const PinDir& dir);

  // Writes the spec: VIPs, global budget, tenant rules and CIDRs. Tenants keep their ids (and
  // bucket and counters) across updates; a new tenant gets a free id with a fresh (full) bucket
  // and zeroed counters. CIDRs that left a tenant are removed before slots are reused.
  Status apply(const EdgeSpec& spec);

  // Counters of every tenant in use plus "(unmatched)" (id 0), summed over CPUs.
  Result<std::vector<EdgeTenantCounters>> counters() const;
  Result<edge_guard_stats> stats() const;
  Result<edge_guard_config> config() const;
  // Tenant name by id, for the slots in use.
  Result<std::vector<std::pair<uint32_t, std::string>>> tenants() const;
  // Records where and how the program is attached (shown by bpftool and heliosctl).
  Status set_attach_info(uint32_t ifindex, edge_attach_mode mode);

 private:
  EdgeMaps() = default;
  static Result<EdgeMaps> from_fds(int config, int vips, int cidrs, int rules, int buckets,
                                   int global, int counters, int stats);
  Status apply_vips(const EdgeSpec& spec);
  Status apply_tenants(const EdgeSpec& spec, uint32_t generation);

  std::vector<UniqueFd> owned_;  // only when opened from pins
  std::optional<MapView<uint32_t, edge_guard_config>> config_;
  std::optional<MapView<edge_vip_key, edge_vip_value>> vips_;
  std::optional<MapView<edge_cidr_key, edge_cidr_value>> cidrs_;
  std::optional<MapView<uint32_t, edge_tenant_rule>> rules_;
  std::optional<MapView<uint32_t, edge_syn_bucket>> buckets_;
  std::optional<MapView<uint32_t, edge_syn_bucket>> global_;
  std::optional<PerCpuMapView<uint32_t, edge_tenant_counters>> counters_;
  std::optional<PerCpuMapView<uint32_t, edge_guard_stats>> stats_;
};

}  // namespace helios::bpf
