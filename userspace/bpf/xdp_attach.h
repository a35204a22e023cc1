// XDP attach and detach through libxdp. libxdp first tries its multi-program dispatcher, which
// needs freplace (BPF_PROG_TYPE_EXT); kernels that refuse it (this machine kind) get libxdp's
// legacy single-program attach instead. We do not guess: after attaching, we ask libxdp what is
// on the interface and report the mode that was actually used.
#pragma once

#include <bpf/libbpf.h>

#include <cstdint>
#include <string>

#include "common/result.h"
#include "helios/bpf_abi.h"

struct xdp_program;

namespace helios::bpf {

enum class XdpMode { kNative, kSkb };

struct XdpAttachment {
  int ifindex = 0;
  XdpMode mode = XdpMode::kNative;
  bool dispatcher = false;  // false: single program (libxdp legacy attach)
  uint32_t prog_id = 0;

  edge_attach_mode abi_mode() const;
  // "native, single program (libxdp dispatcher unavailable: freplace refused)" and the like.
  std::string describe() const;
};

// Owns a libxdp handle on a bpf_object's XDP program (the object stays owned by its skeleton).
class XdpProgram {
 public:
  XdpProgram() = default;
  XdpProgram(const XdpProgram&) = delete;
  XdpProgram& operator=(const XdpProgram&) = delete;
  XdpProgram(XdpProgram&& o) noexcept;
  XdpProgram& operator=(XdpProgram&& o) noexcept;
  ~XdpProgram();

  // Wraps the program in SEC("xdp") of an opened, not yet loaded object.
  static Result<XdpProgram> from_object(bpf_object* obj);
  // Loads the object (via libxdp) and attaches it to ifindex in `mode`.
  Result<XdpAttachment> attach(int ifindex, XdpMode mode);
  int fd() const;

 private:
  xdp_program* prog_ = nullptr;
};

// Interface name -> ifindex, with a readable error.
Result<int> interface_index(const std::string& name);

// The interface's driver name ("veth", "mlx5_core", ...), or "" when it cannot be told.
std::string interface_driver(const std::string& name);

// Removes the XDP program with id `prog_id` (or, when 0, any program named `prog_name`) from the
// interface, whether it sits behind the dispatcher or alone. Ok if nothing of ours is attached.
Status detach_xdp(int ifindex, uint32_t prog_id, const std::string& prog_name);

// Id of the program attached to the interface (any mode), 0 if none.
Result<uint32_t> attached_prog_id(int ifindex);

// Routes libbpf and libxdp messages into spdlog (debug; warnings stay warnings).
void route_bpf_library_logs();

}  // namespace helios::bpf
