// The XDP edge guard as one RAII object for the control plane (heliosctl attach/detach and the
// proxy). attach() loads bpf/xdp_guard.bpf.c, pins its maps under
// /sys/fs/bpf/helios/<instance>/, attaches it to the NIC through libxdp and writes the spec.
// Destroying an attached guard detaches it and removes the pins, unless release() was called
// (heliosctl attach leaves the guard running). open_pinned() reaches a running guard by its pins
// to update rates and CIDRs or read counters, without ever detaching.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bpf/edge_maps.h"
#include "bpf/edge_spec.h"
#include "bpf/pin_dir.h"
#include "bpf/xdp_attach.h"
#include "common/result.h"

namespace helios::bpf {

class EdgeGuard {
 public:
  EdgeGuard(EdgeGuard&&) noexcept;
  EdgeGuard& operator=(EdgeGuard&&) noexcept;
  ~EdgeGuard();

  // Probes the kernel, loads, pins, attaches, writes the spec. Errors for which
  // is_missing_feature() is true mean "run without the guard" (no CAP_BPF, no XDP, no BTF...).
  static Result<EdgeGuard> attach(const EdgeSpec& spec);
  // A running guard, by instance name. Does not own the attachment.
  static Result<EdgeGuard> open_pinned(const std::string& instance);
  // Removes the guard of `instance` from `interface` and its pins. Ok when already gone.
  static Status detach(const std::string& interface, const std::string& instance);

  // Hot reload: VIPs, global budget, tenant rates and CIDRs. The program stays attached.
  Status update(const EdgeSpec& spec);
  Result<std::vector<EdgeTenantCounters>> counters() const;
  Result<edge_guard_stats> stats() const;
  Result<edge_guard_config> config() const;

  // How the program is attached, e.g. "native, single program (...)".
  std::string mode_name() const;
  edge_attach_mode mode() const { return mode_; }
  const std::string& instance() const { return pins_.instance(); }
  const std::string& pin_path() const { return pins_.path(); }
  uint32_t prog_id() const { return prog_id_; }

  // Keep the guard attached and pinned when this object goes away.
  void release() { owns_attachment_ = false; }

 private:
  struct Loaded;  // skeleton + libxdp handle when this process attached the guard
  EdgeGuard(PinDir pins, EdgeMaps maps);
  void teardown();

  PinDir pins_;
  EdgeMaps maps_;
  std::unique_ptr<Loaded> loaded_;
  edge_attach_mode mode_ = EDGE_ATTACH_NONE;
  int ifindex_ = 0;
  uint32_t prog_id_ = 0;
  bool owns_attachment_ = false;
};

const char* attach_mode_name(edge_attach_mode m);

}  // namespace helios::bpf
