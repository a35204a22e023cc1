#include "bpf/sockops_bypass.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "bpf/bpf_error.h"
#include "bpf/feature_probe.h"
#include "bpf/map_view.h"
#include "bpf/pin_dir.h"
#include "bpf/skeleton.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "helios/sockops_bypass.skel.h"

namespace helios::bpf {

namespace {
const std::vector<std::string> kPins = {HELIOS_MAP_BYPASS_SOCKS, HELIOS_MAP_BYPASS_ENDPOINTS,
                                        HELIOS_MAP_BYPASS_STATS};

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

// The calling thread's network namespace cookie (Linux 5.14+).
Result<uint64_t> this_netns_cookie() {
  UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return Error::from_errno("bypass: socket for SO_NETNS_COOKIE");
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(s.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0)
    return Error::from_errno("bypass: SO_NETNS_COOKIE (missing kernel feature: Linux 5.14+)");
  return cookie;
}
}  // namespace

struct SameHostBypass::Loaded {
  Skeleton<sockops_bypass> skel;
  bool msg_attached = false;
  bool pinned = false;
};

SameHostBypass::SameHostBypass() = default;
SameHostBypass::SameHostBypass(SameHostBypass&& o) noexcept
    : loaded_(std::move(o.loaded_)),
      instance_(std::move(o.instance_)),
      cgroup_(std::move(o.cgroup_)),
      pin_path_(std::move(o.pin_path_)) {}
SameHostBypass& SameHostBypass::operator=(SameHostBypass&& o) noexcept {
  if (this != &o) {
    detach();
    loaded_ = std::move(o.loaded_);
    instance_ = std::move(o.instance_);
    cgroup_ = std::move(o.cgroup_);
    pin_path_ = std::move(o.pin_path_);
  }
  return *this;
}
SameHostBypass::~SameHostBypass() {
  detach();
}

void SameHostBypass::detach() {
  if (!loaded_) return;
  auto& sk = loaded_->skel;
  if (sk.get()) {
    // 1. No new sockets: the cgroup link goes first.
    if (sk->links.bypass_sockops) {
      bpf_link__destroy(sk->links.bypass_sockops);
      sk->links.bypass_sockops = nullptr;
    }
    // 2. No more redirects for sockets already in the map.
    if (loaded_->msg_attached)
      bpf_prog_detach2(bpf_program__fd(sk->progs.bypass_msg), bpf_map__fd(sk->maps.bypass_socks),
                       BPF_SK_MSG_VERDICT);
  }
  // 3. Unpin; the maps go when the skeleton closes its fds (sockets leave the SOCKHASH then).
  if (loaded_->pinned)
    if (auto pins = PinDir::for_instance(instance_); pins) (void)pins->remove(kPins);
  loaded_.reset();
  log::info("bypass: detached (instance {})", instance_);
}

Result<SameHostBypass> SameHostBypass::attach(const BypassSpec& spec) {
  if (auto v = validate(spec); !v) return v.error();
  if (auto s = require_bypass(probe_kernel_features()); !s) return s.error();
  auto pins = PinDir::for_instance(spec.instance);
  if (!pins) return pins.error();
  std::string cg = spec.cgroup.empty() ? find_cgroup2_mount() : spec.cgroup;
  UniqueFd cgfd(open(cg.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgfd) return Error::from_errno("bypass: opening cgroup " + cg);

  SameHostBypass out;
  out.instance_ = spec.instance;
  out.cgroup_ = cg;
  out.loaded_ = std::make_unique<Loaded>();
  auto skel = Skeleton<sockops_bypass>::open();
  if (!skel) return skel.error();
  out.loaded_->skel = std::move(*skel);
  auto& sk = out.loaded_->skel;
  // Only this network namespace's connections (bpf/sockops_bypass.bpf.c says why).
  auto cookie = this_netns_cookie();
  if (!cookie) return cookie.error();
  sk.rodata()->netns_cookie = *cookie;
  if (auto s = pins->create(); s) {
    (void)pins->remove(kPins);  // stale pins of a crashed run (keeps the dir if others use it)
    if (auto c = pins->create(); !c) return c.error();
    if (auto p = sk.pin_maps_under(pins->path()); !p) return p.error();
    out.loaded_->pinned = true;
    out.pin_path_ = pins->path();
  } else {
    log::warn("bypass: {}; maps not pinned", s.error().message);
  }
  if (auto s = sk.load(); !s) return s.error();
  if (auto s = out.set_endpoints(spec.endpoints); !s) return s.error();

  int err = bpf_prog_attach(bpf_program__fd(sk->progs.bypass_msg),
                            bpf_map__fd(sk->maps.bypass_socks), BPF_SK_MSG_VERDICT, 0);
  if (err) return libbpf_error(err, "bypass: attaching sk_msg to the sockhash");
  out.loaded_->msg_attached = true;

  bpf_link* link = bpf_program__attach_cgroup(sk->progs.bypass_sockops, cgfd.get());
  if (long e = libbpf_get_error(link); e || !link)
    return libbpf_error(int(e ? e : -EIO), "bypass: attaching sockops to cgroup " + cg);
  sk->links.bypass_sockops = link;
  log::info("bypass: attached to cgroup {} for {} endpoint(s), instance {}", cg,
            spec.endpoints.size(), spec.instance);
  return out;
}

Status SameHostBypass::set_endpoints(const std::vector<BypassEndpoint>& endpoints) {
  if (!loaded_) return Error::invalid("bypass: not attached");
  auto view =
      MapView<sock_endpoint_key, sock_endpoint_value>::of(loaded_->skel->maps.bypass_endpoints);
  if (!view) return view.error();
  auto old = view->keys();
  if (!old) return old.error();
  std::vector<sock_endpoint_key> want;
  for (const auto& e : endpoints) {
    sock_endpoint_key k = endpoint_key(e.endpoint);
    want.push_back(k);
    if (auto s = view->update(k, sock_endpoint_value{uint32_t(e.role)}); !s) return s;
  }
  for (const auto& k : *old) {
    bool keep = false;
    for (const auto& w : want) keep = keep || std::memcmp(&w, &k, sizeof(k)) == 0;
    if (!keep)
      if (auto s = view->erase(k); !s) return s;
  }
  return {};
}

Result<sock_bypass_stats> SameHostBypass::stats() const {
  if (!loaded_) return Error::invalid("bypass: not attached");
  auto view = PerCpuMapView<uint32_t, sock_bypass_stats>::of(loaded_->skel->maps.bypass_stats);
  if (!view) return view.error();
  return view->sum(0, [](sock_bypass_stats& t, const sock_bypass_stats& v) {
    t.established += v.established;
    t.added += v.added;
    t.not_local += v.not_local;
    t.add_failed += v.add_failed;
    t.msgs_redirected += v.msgs_redirected;
    t.bytes_redirected += v.bytes_redirected;
    t.msgs_passed += v.msgs_passed;
  });
}

Result<size_t> SameHostBypass::socket_count() const {
  if (!loaded_) return Error::invalid("bypass: not attached");
  int fd = bpf_map__fd(loaded_->skel->maps.bypass_socks);
  size_t n = 0;
  sock_tuple_key cur{}, next{};
  const sock_tuple_key* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    ++n;
    cur = next;
    prev = &cur;
  }
  if (errno != ENOENT) return Error::from_errno("bypass: iterating bypass_socks");
  return n;
}

Result<bool> SameHostBypass::is_bypassed(int sock_fd) const {
  if (!loaded_) return Error::invalid("bypass: not attached");
  auto key = socket_tuple_key(sock_fd);
  if (!key) return key.error();
  uint64_t cookie = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(loaded_->skel->maps.bypass_socks), &*key, &cookie) == 0)
    return true;
  if (errno == ENOENT) return false;
  return Error::from_errno("bypass: looking up a socket in bypass_socks");
}

}  // namespace helios::bpf
