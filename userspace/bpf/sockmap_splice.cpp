#include "bpf/sockmap_splice.h"

#include <bpf/bpf.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <utility>

#include "bpf/bpf_error.h"
#include "bpf/feature_probe.h"
#include "bpf/map_view.h"
#include "bpf/pin_dir.h"
#include "bpf/skeleton.h"
#include "common/log.h"
#include "helios/sockmap_splice.skel.h"

namespace helios::bpf {

namespace {

const std::vector<std::string> kPins = {HELIOS_MAP_SPLICE_SOCKS,   HELIOS_MAP_SPLICE_CTL,
                                        HELIOS_MAP_SPLICE_STATE,   HELIOS_MAP_SPLICE_LEASES,
                                        HELIOS_MAP_SPLICE_TENANTS, HELIOS_MAP_SPLICE_QPS,
                                        HELIOS_MAP_SPLICE_STATS};

constexpr size_t kQpsBytes = sizeof(splice_qps_bucket) * HELIOS_SOCK_MAX_TENANTS;

}  // namespace

struct SpliceEngine::Loaded {
  Skeleton<sockmap_splice> skel;
  std::vector<SpliceEventRing> rings;
  bool verdict_attached = false;
  bool pinned = false;
  void* qps = nullptr;  // mmapped splice_qps
  size_t qps_len = 0;
  int fd_socks = -1, fd_ctl = -1, fd_state = -1, fd_leases = -1;

  splice_qps_bucket* bucket(uint32_t tenant) const {
    return tenant < HELIOS_SOCK_MAX_TENANTS ? static_cast<splice_qps_bucket*>(qps) + tenant
                                            : nullptr;
  }
  ~Loaded() {
    if (qps) munmap(qps, qps_len);
    if (verdict_attached && skel.get())
      bpf_prog_detach2(bpf_program__fd(skel->progs.splice_verdict), fd_socks,
                       BPF_SK_SKB_STREAM_VERDICT);
  }
};

SpliceEngine::SpliceEngine() = default;
SpliceEngine::SpliceEngine(SpliceEngine&& o) noexcept
    : loaded_(std::move(o.loaded_)),
      instance_(std::move(o.instance_)),
      pin_path_(std::move(o.pin_path_)) {}
SpliceEngine& SpliceEngine::operator=(SpliceEngine&& o) noexcept {
  if (this != &o) {
    teardown();
    loaded_ = std::move(o.loaded_);
    instance_ = std::move(o.instance_);
    pin_path_ = std::move(o.pin_path_);
  }
  return *this;
}
SpliceEngine::~SpliceEngine() {
  teardown();
}

void SpliceEngine::teardown() {
  if (!loaded_) return;
  if (loaded_->pinned)
    if (auto pins = PinDir::for_instance(instance_); pins) (void)pins->remove(kPins);
  loaded_.reset();
}

Result<SpliceEngine> SpliceEngine::load(const SpliceOptions& o) {
  if (o.workers == 0 || o.workers > HELIOS_SOCK_MAX_WORKERS)
    return Error::invalid("splice: workers must be 1.." + std::to_string(HELIOS_SOCK_MAX_WORKERS));
  if (auto s = require_splice(probe_kernel_features()); !s) return s.error();
  auto pins = PinDir::for_instance(o.instance);
  if (!pins) return pins.error();

  SpliceEngine out;
  out.instance_ = o.instance;
  out.loaded_ = std::make_unique<Loaded>();
  Loaded& L = *out.loaded_;
  auto skel = Skeleton<sockmap_splice>::open();
  if (!skel) return skel.error();
  L.skel = std::move(*skel);
  auto& sk = L.skel;
  for (bpf_map* m :
       {sk->maps.splice_socks, sk->maps.splice_ctl, sk->maps.splice_state, sk->maps.splice_leases})
    if (auto s = sk.set_max_entries(m, o.max_sockets); !s) return s.error();
  if (o.pin) {
    if (auto s = pins->create(); s) {
      (void)pins->remove(kPins);  // stale pins of a crashed run
      if (auto c = pins->create(); !c) return c.error();
      for (bpf_map* m : {sk->maps.splice_socks, sk->maps.splice_ctl, sk->maps.splice_state,
                         sk->maps.splice_leases, sk->maps.splice_tenants, sk->maps.splice_qps,
                         sk->maps.splice_stats})
        if (auto p = sk.pin_map(m, pins->file(bpf_map__name(m))); !p) return p.error();
      L.pinned = true;
      out.pin_path_ = pins->path();
    } else {
      log::warn("splice: {}; maps not pinned", s.error().message);
    }
  }
  if (auto s = sk.load(); !s) return s.error();
  L.fd_socks = bpf_map__fd(sk->maps.splice_socks);
  L.fd_ctl = bpf_map__fd(sk->maps.splice_ctl);
  L.fd_state = bpf_map__fd(sk->maps.splice_state);
  L.fd_leases = bpf_map__fd(sk->maps.splice_leases);

  for (uint16_t w = 0; w < o.workers; ++w) {
    std::string name = "splice_ev" + std::to_string(w);
    auto ring = SpliceEventRing::create(HELIOS_SOCK_EVENT_RING_BYTES, name.c_str());
    if (!ring) return ring.error();
    uint32_t key = w;
    int fd = ring->fd();
    if (bpf_map_update_elem(bpf_map__fd(sk->maps.splice_events), &key, &fd, BPF_ANY) != 0)
      return Error::from_errno("splice: installing event ring " + name);
    L.rings.push_back(std::move(*ring));
  }

  L.qps_len =
      (kQpsBytes + size_t(getpagesize()) - 1) / size_t(getpagesize()) * size_t(getpagesize());
  L.qps = mmap(nullptr, L.qps_len, PROT_READ | PROT_WRITE, MAP_SHARED,
               bpf_map__fd(sk->maps.splice_qps), 0);
  if (L.qps == MAP_FAILED) {
    L.qps = nullptr;
    return Error::from_errno("splice: mapping splice_qps");
  }

  int err = bpf_prog_attach(bpf_program__fd(sk->progs.splice_verdict), L.fd_socks,
                            BPF_SK_SKB_STREAM_VERDICT, 0);
  if (err) return libbpf_error(err, "splice: attaching the stream verdict to the sockhash");
  L.verdict_attached = true;
  log::info("splice: engine loaded ({} event ring(s), instance {})", o.workers, o.instance);
  return out;
}

Result<uint64_t> socket_cookie(int fd) {
  uint64_t c = 0;
  socklen_t len = sizeof(c);
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len) != 0)
    return Error::from_errno("splice: SO_COOKIE");
  return c;
}

Result<uint64_t> tcp_bytes_written(int fd) {
  struct tcp_info ti {};
  socklen_t len = sizeof(ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
    return Error::from_errno("splice: TCP_INFO");
  if (len < offsetof(struct tcp_info, tcpi_bytes_retrans) + sizeof(ti.tcpi_bytes_retrans))
    return Error{ENOTSUP, "splice: TCP_INFO lacks tcpi_bytes_sent/tcpi_bytes_retrans"};
  return uint64_t(ti.tcpi_bytes_sent - ti.tcpi_bytes_retrans + ti.tcpi_notsent_bytes);
}

Status SpliceEngine::write_ctl(uint64_t cookie, const splice_ctl& c) {
  if (bpf_map_update_elem(loaded_->fd_ctl, &cookie, &c, BPF_EXIST) != 0)
    return Error::from_errno("splice: updating splice_ctl (socket not added?)");
  return {};
}

Result<SpliceSocket> SpliceEngine::add(int fd, splice_role role) {
  if (!loaded_) return Error::invalid("splice: engine not loaded");
  auto cookie = socket_cookie(fd);
  if (!cookie) return cookie.error();
  auto written = tcp_bytes_written(fd);
  if (!written) return written.error();
  splice_sock_state st{};
  splice_ctl ctl{};
  ctl.role = uint8_t(role);
  if (bpf_map_update_elem(loaded_->fd_state, &*cookie, &st, BPF_NOEXIST) != 0)
    return Error::from_errno("splice: socket already added (splice_state)");
  if (bpf_map_update_elem(loaded_->fd_ctl, &*cookie, &ctl, BPF_NOEXIST) != 0) {
    int e = errno;
    bpf_map_delete_elem(loaded_->fd_state, &*cookie);
    errno = e;
    return Error::from_errno("splice: adding splice_ctl");
  }
  uint64_t value = uint64_t(fd);
  if (bpf_map_update_elem(loaded_->fd_socks, &*cookie, &value, BPF_NOEXIST) != 0) {
    int e = errno;
    bpf_map_delete_elem(loaded_->fd_ctl, &*cookie);
    bpf_map_delete_elem(loaded_->fd_state, &*cookie);
    errno = e;
    return Error::from_errno("splice: putting the socket into splice_socks");
  }
  return SpliceSocket{*cookie, *written};
}

Status SpliceEngine::remove(uint64_t cookie) {
  if (!loaded_) return Error::invalid("splice: engine not loaded");
  Status st;
  if (bpf_map_delete_elem(loaded_->fd_socks, &cookie) != 0 && errno != ENOENT)
    st = Error::from_errno("splice: removing from splice_socks");
  bpf_map_delete_elem(loaded_->fd_ctl, &cookie);
  bpf_map_delete_elem(loaded_->fd_state, &cookie);
  return st;
}

Status SpliceEngine::splice(uint64_t client, uint64_t backend, const LeaseInfo& l,
                            const Consumed& consumed) {
  if (!loaded_) return Error::invalid("splice: engine not loaded");
  if (l.tenant_id >= HELIOS_SOCK_MAX_TENANTS) return Error::invalid("splice: tenant id too big");
  if (l.worker >= loaded_->rings.size()) return Error::invalid("splice: no such worker ring");
  if (l.seq == 0) return Error::invalid("splice: lease seq 0 is reserved");
  splice_lease lease{};
  lease.state = SPLICE_LEASE_ACTIVE;
  lease.seq = l.seq;
  lease.outstanding = l.outstanding;
  lease.unsynced = l.unsynced ? 1 : 0;
  lease.tenant_id = l.tenant_id;
  lease.mode = uint8_t(l.mode);
  lease.tx_status = uint8_t(l.tx_status);
  lease.worker = l.worker;
  // The lease first, then the sockets' ctl: a verdict that sees the new ctl finds the lease.
  if (bpf_map_update_elem(loaded_->fd_leases, &client, &lease, BPF_ANY) != 0)
    return Error::from_errno("splice: writing splice_leases");
  splice_ctl c{};
  c.lease_id = client;
  c.lease_seq = l.seq;
  c.tenant_id = l.tenant_id;
  c.flags = l.flags;
  c.worker = l.worker;
  c.mode = uint8_t(l.mode);
  c.peer_cookie = backend;
  c.expect_passed = consumed.client;
  c.role = SPLICE_ROLE_CLIENT;
  if (auto s = write_ctl(client, c); !s) return s;
  c.peer_cookie = client;
  c.expect_passed = consumed.backend;
  c.role = SPLICE_ROLE_BACKEND;
  return write_ctl(backend, c);
}

namespace {
LeaseSnapshot from_op(const splice_op& op) {
  LeaseSnapshot s;
  s.prev_state = splice_lease_state(op.prev_state);
  s.state = splice_lease_state(op.state);
  s.reason = splice_reason(op.reason);
  s.outstanding = op.outstanding;
  s.unsynced = op.unsynced != 0;
  s.client_mid = op.client_mid != 0;
  s.tx_status = char(op.tx_status);
  return s;
}
}  // namespace

static Result<LeaseSnapshot> run_op(const Skeleton<sockmap_splice>& sk, uint16_t code,
                                    uint64_t client, uint32_t seq) {
  splice_op op{};
  op.code = code;
  op.lease_id = client;
  op.seq = seq;
  splice_op out{};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = &op, .data_out = &out, .data_size_in = sizeof(op),
              .data_size_out = sizeof(out), .repeat = 1);
  int err = bpf_prog_test_run_opts(bpf_program__fd(sk->progs.splice_ctl_op), &opts);
  if (err) return libbpf_error(err, "splice: running the lease control program");
  if (out.result == 1) return Error{ENOENT, "splice: no such lease"};
  if (out.result == 2) return Error{ESTALE, "splice: the lease has another sequence number"};
  return from_op(out);
}

Result<LeaseSnapshot> SpliceEngine::unsplice(uint64_t client, uint32_t seq) {
  if (!loaded_) return Error::invalid("splice: engine not loaded");
  return run_op(loaded_->skel, SPLICE_OP_UNSPLICE, client, seq);
}

Result<LeaseSnapshot> SpliceEngine::read_lease(uint64_t client, uint32_t seq) const {
  if (!loaded_) return Error::invalid("splice: engine not loaded");
  return run_op(loaded_->skel, SPLICE_OP_READ, client, seq);
}

Status SpliceEngine::release(uint64_t client, uint64_t backend) {
  if (!loaded_) return Error::invalid("splice: engine not loaded");
  Status st;
  for (auto [cookie, role] :
       {std::pair{client, SPLICE_ROLE_CLIENT}, std::pair{backend, SPLICE_ROLE_BACKEND}}) {
    splice_ctl c{};
    c.role = uint8_t(role);
    if (auto s = write_ctl(cookie, c); !s && st.ok()) st = s;
  }
  bpf_map_delete_elem(loaded_->fd_leases, &client);
  return st;
}

Result<splice_sock_state> SpliceEngine::socket_state(uint64_t cookie) const {
  if (!loaded_) return Error::invalid("splice: engine not loaded");
  splice_sock_state st{};
  if (bpf_map_lookup_elem(loaded_->fd_state, &cookie, &st) != 0)
    return Error::from_errno("splice: reading splice_state");
  return st;
}

Result<Handback> SpliceEngine::handback(uint64_t cookie) const {
  auto st = socket_state(cookie);
  if (!st) return st.error();
  Handback h;
  h.happened = st->handbacks > 0;
  h.at = st->handback_at;
  h.frame = st->handback;
  h.reason = splice_reason(st->reason);
  return h;
}

Result<bool> SpliceEngine::drained(int fd, const SpliceSocket& s, uint64_t user_written) const {
  auto st = socket_state(s.cookie);
  if (!st) return st.error();
  auto now = tcp_bytes_written(fd);
  if (!now) return now.error();
  uint64_t by_kernel = *now - s.tcp_written - user_written;
  return by_kernel >= st->redirected_in;
}

Result<splice_tenant_counters> SpliceEngine::tenant_counters(uint32_t tenant) const {
  if (!loaded_) return Error::invalid("splice: engine not loaded");
  auto view =
      PerCpuMapView<uint32_t, splice_tenant_counters>::of(loaded_->skel->maps.splice_tenants);
  if (!view) return view.error();
  return view->sum(tenant, [](splice_tenant_counters& t, const splice_tenant_counters& v) {
    t.queries += v.queries;
    t.transactions += v.transactions;
    t.bytes_to_backend += v.bytes_to_backend;
    t.bytes_to_client += v.bytes_to_client;
    t.leases_ended += v.leases_ended;
    t.handbacks += v.handbacks;
    t.qps_refused += v.qps_refused;
  });
}

Status SpliceEngine::zero_tenant(uint32_t tenant) {
  if (!loaded_) return Error::invalid("splice: engine not loaded");
  auto view =
      PerCpuMapView<uint32_t, splice_tenant_counters>::of(loaded_->skel->maps.splice_tenants);
  if (!view) return view.error();
  if (auto s = view->update_all(tenant, splice_tenant_counters{}); !s) return s;
  if (auto* b = loaded_->bucket(tenant)) {
    std::atomic_ref<__s64>(b->tokens).store(0);
    std::atomic_ref<__u64>(b->taken).store(0);
  }
  return {};
}

void SpliceEngine::add_qps_tokens(uint32_t tenant, int64_t n) {
  if (!loaded_) return;
  if (auto* b = loaded_->bucket(tenant)) std::atomic_ref<__s64>(b->tokens).fetch_add(n);
}

int64_t SpliceEngine::qps_tokens(uint32_t tenant) const {
  if (!loaded_) return 0;
  auto* b = loaded_->bucket(tenant);
  return b ? std::atomic_ref<__s64>(b->tokens).load() : 0;
}

uint64_t SpliceEngine::qps_taken(uint32_t tenant) const {
  if (!loaded_) return 0;
  auto* b = loaded_->bucket(tenant);
  return b ? std::atomic_ref<__u64>(b->taken).load() : 0;
}

Result<splice_stats> SpliceEngine::stats() const {
  if (!loaded_) return Error::invalid("splice: engine not loaded");
  auto view = PerCpuMapView<uint32_t, splice_stats>::of(loaded_->skel->maps.splice_stats);
  if (!view) return view.error();
  return view->sum(0, [](splice_stats& t, const splice_stats& v) {
    t.skbs += v.skbs;
    t.bytes += v.bytes;
    t.forwarded_skbs += v.forwarded_skbs;
    t.passed_skbs += v.passed_skbs;
    t.no_state += v.no_state;
    t.activations += v.activations;
    t.activations_refused += v.activations_refused;
    t.redirect_failed += v.redirect_failed;
    t.events_lost += v.events_lost;
  });
}

SpliceEventRing& SpliceEngine::event_ring(uint16_t worker) {
  return loaded_->rings.at(worker);
}

uint16_t SpliceEngine::workers() const {
  return loaded_ ? uint16_t(loaded_->rings.size()) : 0;
}

const char* splice_reason_name(uint32_t r) {
  switch (r) {
    case SPLICE_R_NONE:
      return "none";
    case SPLICE_R_READY_IDLE:
      return "ready_idle";
    case SPLICE_R_TERMINATE:
      return "terminate";
    case SPLICE_R_NAMED_STATEMENT:
      return "named_statement";
    case SPLICE_R_QPS_EMPTY:
      return "qps_empty";
    case SPLICE_R_UNKNOWN_MESSAGE:
      return "unknown_message";
    case SPLICE_R_BAD_LENGTH:
      return "bad_length";
    case SPLICE_R_WALK_LIMIT:
      return "walk_limit";
    case SPLICE_R_BYTES_AFTER_END:
      return "bytes_after_end";
    case SPLICE_R_PROTOCOL:
      return "protocol";
    case SPLICE_R_PARAMETER_STATUS:
      return "parameter_status";
    case SPLICE_R_USER:
      return "user";
    case SPLICE_R_NOT_CAUGHT_UP:
      return "not_caught_up";
    case SPLICE_R_REDIRECT_FAILED:
      return "redirect_failed";
    case SPLICE_R_TXN_OPEN:
      return "txn_open";
  }
  return "?";
}

const char* splice_event_name(uint32_t kind) {
  switch (kind) {
    case SPLICE_EV_LEASE_ENDED:
      return "lease_ended";
    case SPLICE_EV_HANDED_BACK:
      return "handed_back";
    case SPLICE_EV_FRAMING_ERROR:
      return "framing_error";
  }
  return "?";
}

}  // namespace helios::bpf
