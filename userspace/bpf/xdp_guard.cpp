#include "bpf/xdp_guard.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <net/if.h>
#include <unistd.h>

#include <utility>

#include "bpf/bpf_error.h"
#include "bpf/feature_probe.h"
#include "bpf/skeleton.h"
#include "common/log.h"
#include "helios/xdp_guard.skel.h"

namespace helios::bpf {

namespace {
// Everything the guard pins in its instance directory.
const std::vector<std::string>& guard_pins() {
  static const std::vector<std::string> names = {
      HELIOS_MAP_GUARD_CONFIG,    HELIOS_MAP_VIP_TABLE,   HELIOS_MAP_TENANT_CIDRS,
      HELIOS_MAP_TENANT_RULES,    HELIOS_MAP_SYN_BUCKETS, HELIOS_MAP_GLOBAL_BUCKET,
      HELIOS_MAP_TENANT_COUNTERS, HELIOS_MAP_GUARD_STATS, HELIOS_PIN_XDP_PROG};
  return names;
}
// Id of the program pinned at `path`, 0 if none.
uint32_t pinned_prog_id(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return 0;
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  uint32_t id = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
  close(fd);
  return id;
}

// The instance whose pinned guard program has id `prog_id`, or "".
std::string instance_owning(uint32_t prog_id) {
  std::string owner;
  DIR* d = opendir(HELIOS_PIN_ROOT);
  if (!d) return owner;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    if (pinned_prog_id(std::string(HELIOS_PIN_ROOT) + "/" + n + "/" + HELIOS_PIN_XDP_PROG) ==
        prog_id) {
      owner = n;
      break;
    }
  }
  closedir(d);
  return owner;
}

}  // namespace

struct EdgeGuard::Loaded {
  Skeleton<xdp_guard> skel;
  XdpProgram prog;
};

const char* attach_mode_name(edge_attach_mode m) {
  switch (m) {
    case EDGE_ATTACH_NATIVE_SINGLE:
      return "native, single program (libxdp dispatcher unavailable: legacy attach)";
    case EDGE_ATTACH_SKB_SINGLE:
      return "skb (generic), single program (libxdp dispatcher unavailable: legacy attach)";
    case EDGE_ATTACH_NATIVE_MULTI:
      return "native, libxdp dispatcher";
    case EDGE_ATTACH_SKB_MULTI:
      return "skb (generic), libxdp dispatcher";
    case EDGE_ATTACH_NONE:
      break;
  }
  return "not attached";
}

EdgeGuard::EdgeGuard(PinDir pins, EdgeMaps maps) : pins_(std::move(pins)), maps_(std::move(maps)) {}
EdgeGuard::EdgeGuard(EdgeGuard&& o) noexcept
    : pins_(o.pins_),
      maps_(std::move(o.maps_)),
      loaded_(std::move(o.loaded_)),
      mode_(o.mode_),
      ifindex_(o.ifindex_),
      prog_id_(o.prog_id_),
      owns_attachment_(std::exchange(o.owns_attachment_, false)) {}
EdgeGuard& EdgeGuard::operator=(EdgeGuard&& o) noexcept {
  if (this != &o) {
    teardown();
    pins_ = o.pins_;
    maps_ = std::move(o.maps_);
    loaded_ = std::move(o.loaded_);
    mode_ = o.mode_;
    ifindex_ = o.ifindex_;
    prog_id_ = o.prog_id_;
    owns_attachment_ = std::exchange(o.owns_attachment_, false);
  }
  return *this;
}
EdgeGuard::~EdgeGuard() {
  teardown();
}

void EdgeGuard::teardown() {
  if (owns_attachment_) {
    owns_attachment_ = false;
    if (auto s = detach_xdp(ifindex_, prog_id_, "xdp_guard"); !s)
      log::warn("edge: detaching instance {}: {}", pins_.instance(), s.error().message);
    if (auto s = pins_.remove(guard_pins()); !s)
      log::warn("edge: unpinning instance {}: {}", pins_.instance(), s.error().message);
  }
  loaded_.reset();
}

std::string EdgeGuard::mode_name() const {
  return attach_mode_name(mode_);
}

Result<EdgeGuard> EdgeGuard::attach(const EdgeSpec& spec) {
  if (auto s = validate(spec); !s) return s.error();
  auto pins = PinDir::for_instance(spec.instance);
  if (!pins) return pins.error();
  if (spec.interface.empty()) return Error::invalid("edge: no interface given");
  auto ifindex = interface_index(spec.interface);
  if (!ifindex) return ifindex.error();
  KernelFeatures feats = probe_kernel_features();
  if (auto s = require_edge_guard(feats); !s) return s.error();
  if (pins->has(HELIOS_MAP_GUARD_CONFIG) || pins->has(HELIOS_PIN_XDP_PROG))
    return Error{EEXIST, "edge: instance '" + spec.instance + "' is already attached (pins at " +
                             pins->path() + "); run heliosctl detach first"};
  if (auto s = pins->create(); !s) return s.error();

  auto fail = [&](Error e) -> Result<EdgeGuard> {
    (void)pins->remove(guard_pins());  // best effort: the original error is the one to report
    return e;
  };
  auto loaded = std::make_unique<Loaded>();
  auto skel = Skeleton<xdp_guard>::open();
  if (!skel) return fail(skel.error());
  loaded->skel = std::move(*skel);
  if (auto s = loaded->skel.pin_maps_under(pins->path()); !s) return fail(s.error());
  auto prog = XdpProgram::from_object(loaded->skel.object());
  if (!prog) return fail(prog.error());
  loaded->prog = std::move(*prog);
  auto att = loaded->prog.attach(*ifindex, spec.skb_mode ? XdpMode::kSkb : XdpMode::kNative);
  if (!att) return fail(att.error());
  loaded->skel.mark_loaded_externally();

  // From here the program runs (passing everything: vip_table is empty until apply()).
  auto undo = [&](Error e) -> Result<EdgeGuard> {
    (void)detach_xdp(*ifindex, att->prog_id, "xdp_guard");  // best effort, as above
    return fail(std::move(e));
  };
  if (bpf_obj_pin(loaded->prog.fd(), pins->file(HELIOS_PIN_XDP_PROG).c_str()) != 0)
    return undo(Error::from_errno("edge: pinning the program"));
  auto maps = EdgeMaps::of(*loaded->skel.get());
  if (!maps) return undo(maps.error());
  if (auto s = maps->apply(spec); !s) return undo(s.error());
  if (auto s = maps->set_attach_info(uint32_t(*ifindex), att->abi_mode()); !s)
    return undo(s.error());

  EdgeGuard g(*pins, std::move(*maps));
  g.loaded_ = std::move(loaded);
  g.mode_ = att->abi_mode();
  g.ifindex_ = *ifindex;
  g.prog_id_ = att->prog_id;
  g.owns_attachment_ = true;
  log::info("edge: guard attached to {} ({}), instance {}, prog id {}", spec.interface,
            att->describe(), spec.instance, att->prog_id);
  return g;
}

Result<EdgeGuard> EdgeGuard::open_pinned(const std::string& instance) {
  auto pins = PinDir::for_instance(instance);
  if (!pins) return pins.error();
  auto maps = EdgeMaps::open_pinned(*pins);
  if (!maps) return maps.error();
  auto cfg = maps->config();
  if (!cfg) return cfg.error();
  EdgeGuard g(*pins, std::move(*maps));
  g.mode_ = static_cast<edge_attach_mode>(cfg->attach_mode);
  g.ifindex_ = int(cfg->ifindex);
  g.prog_id_ = pinned_prog_id(pins->file(HELIOS_PIN_XDP_PROG));
  return g;
}

Status EdgeGuard::detach(const std::string& interface, const std::string& instance) {
  auto pins = PinDir::for_instance(instance);
  if (!pins) return pins.error();
  // Where the pins say this instance is attached (0 when there are no pins).
  uint32_t pinned_ifindex = 0;
  if (auto maps = EdgeMaps::open_pinned(*pins); maps)
    if (auto cfg = maps->config(); cfg) pinned_ifindex = cfg->ifindex;
  auto ifindex = interface_index(interface);
  if (!ifindex) {
    char name[IF_NAMESIZE] = {};
    if (pinned_ifindex && !if_indextoname(pinned_ifindex, name)) {
      // The interface is gone (and the program with it): only the pins are left to remove.
      return pins->remove(guard_pins());
    }
    return ifindex.error();
  }
  if (pinned_ifindex && pinned_ifindex != uint32_t(*ifindex)) {
    char name[IF_NAMESIZE] = {};
    const char* n = if_indextoname(pinned_ifindex, name);
    return Error::invalid("edge: instance '" + instance + "' is attached to " +
                          (n ? std::string(n) : "ifindex " + std::to_string(pinned_ifindex)) +
                          ", not " + interface);
  }
  uint32_t prog_id = pinned_prog_id(pins->file(HELIOS_PIN_XDP_PROG));
  if (prog_id == 0) {
    // No pin (a half-removed instance): the guard on the interface is only ours to remove by
    // name if no other instance has it pinned.
    auto on_link = attached_prog_id(*ifindex);
    if (on_link && *on_link != 0) {
      std::string owner = instance_owning(*on_link);
      if (!owner.empty() && owner != instance)
        return Error::invalid("edge: the guard on " + interface + " belongs to instance '" + owner +
                              "', not '" + instance + "'");
    }
  }
  Status st = detach_xdp(*ifindex, prog_id, "xdp_guard");
  Status un = pins->remove(guard_pins());
  if (!st) return st;
  return un;
}

Status EdgeGuard::update(const EdgeSpec& spec) {
  return maps_.apply(spec);
}
Result<std::vector<EdgeTenantCounters>> EdgeGuard::counters() const {
  return maps_.counters();
}
Result<edge_guard_stats> EdgeGuard::stats() const {
  return maps_.stats();
}
Result<edge_guard_config> EdgeGuard::config() const {
  return maps_.config();
}

}  // namespace helios::bpf
