#include "bpf/vip_lookup.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "bpf/bpf_error.h"
#include "bpf/feature_probe.h"
#include "bpf/local_route.h"
#include "bpf/map_view.h"
#include "bpf/skeleton.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "helios/vip_lookup.skel.h"

namespace helios::bpf {

struct VipSteering::Loaded {
  Skeleton<vip_lookup> skel;
  std::string stats_pin;
};

VipSteering::VipSteering() = default;
VipSteering::VipSteering(VipSteering&& o) noexcept
    : loaded_(std::move(o.loaded_)),
      instance_(std::move(o.instance_)),
      vip_(o.vip_),
      lo_ifindex_(o.lo_ifindex_),
      route_created_(std::exchange(o.route_created_, false)) {}
VipSteering& VipSteering::operator=(VipSteering&& o) noexcept {
  if (this != &o) {
    teardown();
    loaded_ = std::move(o.loaded_);
    instance_ = std::move(o.instance_);
    vip_ = o.vip_;
    lo_ifindex_ = o.lo_ifindex_;
    route_created_ = std::exchange(o.route_created_, false);
  }
  return *this;
}
VipSteering::~VipSteering() {
  teardown();
}

void VipSteering::teardown() {
  if (loaded_) {
    if (!loaded_->stats_pin.empty())
      if (auto pins = PinDir::for_instance(instance_); pins)
        (void)pins->remove({HELIOS_MAP_VIP_STATS});  // keeps the dir if the guard shares it
    loaded_.reset();  // destroys the link: the program leaves the namespace
  }
  if (route_created_) {
    route_created_ = false;
    if (auto s = del_local_route(vip_, lo_ifindex_); !s) log::warn("{}", s.error().message);
  }
}

Result<VipSteering> VipSteering::attach(std::string vip, uint16_t port, int listener_fd,
                                        std::string instance) {
  auto addr = parse_ip(vip);
  if (!addr) return addr.error();
  if (port == 0) return Error::invalid("vip: port 0");
  auto pins = PinDir::for_instance(instance);
  if (!pins) return pins.error();
  int acc = 0;
  socklen_t len = sizeof(acc);
  if (getsockopt(listener_fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 || !acc)
    return Error::invalid("vip: fd " + std::to_string(listener_fd) + " is not a listening socket");
  if (auto s = require_vip_steering(probe_kernel_features()); !s) return s.error();

  VipSteering out;
  out.instance_ = instance;
  out.vip_ = *addr;
  out.loaded_ = std::make_unique<Loaded>();
  auto skel = Skeleton<vip_lookup>::open();
  if (!skel) return skel.error();
  out.loaded_->skel = std::move(*skel);
  auto& sk = out.loaded_->skel;
  auto* ro = sk.rodata();
  std::memcpy(ro->vip_cfg.vip_addr, addr->bytes, HELIOS_ADDR_LEN);
  ro->vip_cfg.vip_port = port;  // host order, as sk_lookup's local_port
  ro->vip_cfg.is_ipv4 = addr->is_v4() ? 1 : 0;
  // Pinning the stats is for operators only: without bpffs the VIP still works.
  if (pins->create().ok()) {
    out.loaded_->stats_pin = pins->file(HELIOS_MAP_VIP_STATS);
    unlink(out.loaded_->stats_pin.c_str());  // a stale pin from a crashed run
    if (auto s = sk.pin_map(sk->maps.vip_stats, out.loaded_->stats_pin); !s) return s.error();
  }
  if (auto s = sk.load(); !s) return s.error();

  uint32_t key = HELIOS_VIP_LISTENER_KEY;
  uint64_t value = uint64_t(listener_fd);
  if (bpf_map_update_elem(bpf_map__fd(sk->maps.vip_listener), &key, &value, BPF_ANY) != 0)
    return Error::from_errno("vip: putting the listener into the sockmap");

  UniqueFd netns(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!netns) return Error::from_errno("vip: opening this thread's network namespace");
  bpf_link* link = bpf_program__attach_netns(sk->progs.vip_lookup, netns.get());
  if (long err = libbpf_get_error(link); err || !link)
    return libbpf_error(int(err ? err : -EIO), "vip: attaching sk_lookup to the network namespace");
  sk->links.vip_lookup = link;  // destroyed with the skeleton

  out.lo_ifindex_ = int(if_nametoindex("lo"));
  if (out.lo_ifindex_ == 0) return Error::from_errno("vip: no loopback interface");
  auto created = add_local_route(*addr, out.lo_ifindex_);
  if (!created) return created.error();
  out.route_created_ = *created;
  log::info("vip: {}:{} steered to listener fd {} (route {}), instance {}", format_ip(*addr), port,
            listener_fd, *created ? "added" : "already present", instance);
  return out;
}

Result<vip_lookup_stats> VipSteering::stats() const {
  if (!loaded_) return Error::invalid("vip: not attached");
  auto view = PerCpuMapView<uint32_t, vip_lookup_stats>::of(loaded_->skel->maps.vip_stats);
  if (!view) return view.error();
  return view->sum(0, [](vip_lookup_stats& t, const vip_lookup_stats& v) {
    t.lookups += v.lookups;
    t.steered += v.steered;
    t.no_listener += v.no_listener;
    t.assign_failed += v.assign_failed;
  });
}

}  // namespace helios::bpf
