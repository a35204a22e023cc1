#include "bpf/skmsg_reply.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "bpf/bpf_error.h"
#include "bpf/bypass_spec.h"
#include "bpf/feature_probe.h"
#include "bpf/map_view.h"
#include "bpf/skeleton.h"
#include "common/unique_fd.h"
#include "helios/skmsg_reply.skel.h"

namespace helios::bpf {

struct SkmsgReply::Loaded {
  Skeleton<skmsg_reply> skel;
  bool msg_attached = false;
  skmsg_lease* leases = nullptr;  // mmapped skmsg_leases
  size_t leases_len = 0;
};

SkmsgReply::SkmsgReply() = default;
SkmsgReply::SkmsgReply(SkmsgReply&& o) noexcept : loaded_(std::move(o.loaded_)) {}
SkmsgReply& SkmsgReply::operator=(SkmsgReply&& o) noexcept {
  if (this != &o) {
    detach();
    loaded_ = std::move(o.loaded_);
  }
  return *this;
}
SkmsgReply::~SkmsgReply() {
  detach();
}

void SkmsgReply::detach() {
  if (!loaded_) return;
  auto& sk = loaded_->skel;
  if (sk.get()) {
    for (bpf_link** l :
         {&sk->links.skmsg_sockops, &sk->links.skmsg_send_done}) {  // no new sockets first
      if (*l) bpf_link__destroy(*l);
      *l = nullptr;
    }
    if (loaded_->msg_attached)
      bpf_prog_detach2(bpf_program__fd(sk->progs.skmsg_reply), bpf_map__fd(sk->maps.skmsg_socks),
                       BPF_SK_MSG_VERDICT);
  }
  if (loaded_->leases) munmap(loaded_->leases, loaded_->leases_len);
  loaded_.reset();
}

Result<SkmsgReply> SkmsgReply::attach(const SkmsgReplySpec& spec) {
  if (spec.db_port == 0) return Error::invalid("skmsg: db_port is 0");
  if (auto s = require_bypass(probe_kernel_features()); !s) return s.error();  // sockops+sk_msg
  std::string cg = spec.cgroup.empty() ? find_cgroup2_mount() : spec.cgroup;
  UniqueFd cgfd(open(cg.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgfd) return Error::from_errno("skmsg: opening cgroup " + cg);

  SkmsgReply out;
  out.loaded_ = std::make_unique<Loaded>();
  auto skel = Skeleton<skmsg_reply>::open();
  if (!skel) return skel.error();
  out.loaded_->skel = std::move(*skel);
  auto& sk = out.loaded_->skel;
  if (auto s = sk.load(); !s) return s.error();

  size_t len = sizeof(skmsg_lease) * HELIOS_SKMSG_MAX_LEASES;
  size_t page = size_t(sysconf(_SC_PAGESIZE));
  len = (len + page - 1) / page * page;
  void* m =
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(sk->maps.skmsg_leases), 0);
  if (m == MAP_FAILED) return Error::from_errno("skmsg: mmap of skmsg_leases");
  out.loaded_->leases = static_cast<skmsg_lease*>(m);
  out.loaded_->leases_len = len;

  uint32_t zero = 0;
  skmsg_config cfg{};
  cfg.db_port = spec.db_port;
  if (bpf_map_update_elem(bpf_map__fd(sk->maps.skmsg_config), &zero, &cfg, BPF_ANY) != 0)
    return Error::from_errno("skmsg: writing skmsg_config");

  int err = bpf_prog_attach(bpf_program__fd(sk->progs.skmsg_reply),
                            bpf_map__fd(sk->maps.skmsg_socks), BPF_SK_MSG_VERDICT, 0);
  if (err) return libbpf_error(err, "skmsg: attaching sk_msg to skmsg_socks");
  out.loaded_->msg_attached = true;
  bpf_link* link = bpf_program__attach_cgroup(sk->progs.skmsg_sockops, cgfd.get());
  if (long e = libbpf_get_error(link); e || !link)
    return libbpf_error(int(e ? e : -EIO), "skmsg: attaching sockops to cgroup " + cg);
  sk->links.skmsg_sockops = link;
  // Failed redirects (client send buffer full) must be known to the framing: the raw
  // tracepoint sock_send_length after each of PostgreSQL's sendmsg calls.
  bpf_link* tp = bpf_program__attach(sk->progs.skmsg_send_done);
  if (long e = libbpf_get_error(tp); e || !tp) {
    if (e == -ENOENT || e == -EINVAL || e == -EOPNOTSUPP)
      return missing_feature("raw tracepoint sock:sock_send_length", std::strerror(int(-e)));
    return libbpf_error(int(e ? e : -EIO), "skmsg: attaching raw_tp sock_send_length");
  }
  sk->links.skmsg_send_done = tp;
  return out;
}

Result<sock_tuple_key> peer_tuple_key(int fd) {
  auto k = socket_tuple_key(fd);
  if (!k) return k.error();
  sock_tuple_key p{};
  std::memcpy(p.local_addr, k->remote_addr, HELIOS_ADDR_LEN);
  std::memcpy(p.remote_addr, k->local_addr, HELIOS_ADDR_LEN);
  p.local_port = k->remote_port;
  p.remote_port = k->local_port;
  return p;
}

Result<bool> SkmsgReply::backend_in_map(int backend_fd) const {
  if (!loaded_) return Error::invalid("skmsg: not attached");
  auto key = peer_tuple_key(backend_fd);
  if (!key) return key.error();
  uint64_t v = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(loaded_->skel->maps.skmsg_socks), &*key, &v) == 0)
    return true;
  if (errno == ENOENT) return false;
  return Error::from_errno("skmsg: looking up skmsg_socks");
}

Status SkmsgReply::route(int backend_fd, uint32_t slot, int client_fd) {
  if (!loaded_) return Error::invalid("skmsg: not attached");
  if (slot >= HELIOS_SKMSG_MAX_LEASES) return Error::invalid("skmsg: slot out of range");
  auto key = peer_tuple_key(backend_fd);
  if (!key) return key.error();
  auto& sk = loaded_->skel;
  // A fresh slot: idle, at a message boundary, counters zero (the program does not look at an
  // unrouted slot).
  std::atomic_ref<uint32_t>(loaded_->leases[slot].state).store(SKMSG_IDLE);
  std::memset(&loaded_->leases[slot], 0, sizeof(skmsg_lease));
  uint64_t fd = uint64_t(client_fd);
  if (bpf_map_update_elem(bpf_map__fd(sk->maps.skmsg_targets), &slot, &fd, BPF_ANY) != 0)
    return Error::from_errno("skmsg: adding the client socket to skmsg_targets");
  if (bpf_map_update_elem(bpf_map__fd(sk->maps.skmsg_routes), &*key, &slot, BPF_ANY) != 0)
    return Error::from_errno("skmsg: writing skmsg_routes");
  return {};
}

Status SkmsgReply::unroute(int backend_fd, uint32_t slot) {
  if (!loaded_) return Error::invalid("skmsg: not attached");
  auto& sk = loaded_->skel;
  if (slot < HELIOS_SKMSG_MAX_LEASES)
    std::atomic_ref<uint32_t>(loaded_->leases[slot].state).store(SKMSG_IDLE);
  if (auto key = peer_tuple_key(backend_fd); key)
    (void)bpf_map_delete_elem(bpf_map__fd(sk->maps.skmsg_routes), &*key);
  (void)bpf_map_delete_elem(bpf_map__fd(sk->maps.skmsg_targets), &slot);
  return {};
}

void SkmsgReply::arm(uint32_t slot) {
  if (!loaded_ || slot >= HELIOS_SKMSG_MAX_LEASES) return;
  skmsg_lease& l = loaded_->leases[slot];
  std::atomic_ref<__u64>(l.armed).fetch_add(1, std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(l.replay).store(0, std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(l.state).store(SKMSG_ARMED, std::memory_order_release);
}

bool SkmsgReply::armed(uint32_t slot) const {
  if (!loaded_ || slot >= HELIOS_SKMSG_MAX_LEASES) return false;
  return std::atomic_ref<uint32_t>(loaded_->leases[slot].state).load() == SKMSG_ARMED;
}

skmsg_lease SkmsgReply::lease(uint32_t slot) const {
  skmsg_lease out{};
  if (loaded_ && slot < HELIOS_SKMSG_MAX_LEASES)
    std::memcpy(&out, &loaded_->leases[slot], sizeof(out));
  return out;
}

Result<skmsg_stats> SkmsgReply::stats() const {
  if (!loaded_) return Error::invalid("skmsg: not attached");
  auto view = PerCpuMapView<uint32_t, skmsg_stats>::of(loaded_->skel->maps.skmsg_stats);
  if (!view) return view.error();
  return view->sum(0, [](skmsg_stats& t, const skmsg_stats& v) {
    t.added += v.added;
    t.runs += v.runs;
    t.passed += v.passed;
    t.redirected += v.redirected;
    t.bytes_redirected += v.bytes_redirected;
    t.redirect_failed += v.redirect_failed;
    t.rfq_idle += v.rfq_idle;
    t.pulls += v.pulls;
    t.split += v.split;
    t.framing_errors += v.framing_errors;
    t.redirect_errors += v.redirect_errors;
    t.replayed_bytes += v.replayed_bytes;
    t.ends_redone += v.ends_redone;
  });
}

}  // namespace helios::bpf
