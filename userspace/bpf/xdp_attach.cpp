#include "bpf/xdp_attach.h"

#include <bpf/bpf.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <utility>

#include "bpf/bpf_error.h"
#include "common/log.h"

namespace helios::bpf {

edge_attach_mode XdpAttachment::abi_mode() const {
  if (mode == XdpMode::kNative)
    return dispatcher ? EDGE_ATTACH_NATIVE_MULTI : EDGE_ATTACH_NATIVE_SINGLE;
  return dispatcher ? EDGE_ATTACH_SKB_MULTI : EDGE_ATTACH_SKB_SINGLE;
}

std::string XdpAttachment::describe() const {
  std::string s = mode == XdpMode::kNative ? "native" : "skb (generic)";
  s += dispatcher
           ? ", libxdp dispatcher (multi-program)"
           : ", single program (libxdp dispatcher unavailable on this kernel: legacy attach)";
  return s;
}

XdpProgram::XdpProgram(XdpProgram&& o) noexcept : prog_(std::exchange(o.prog_, nullptr)) {}
XdpProgram& XdpProgram::operator=(XdpProgram&& o) noexcept {
  if (this != &o) {
    if (prog_) xdp_program__close(prog_);
    prog_ = std::exchange(o.prog_, nullptr);
  }
  return *this;
}
XdpProgram::~XdpProgram() {
  // Closing the handle does not detach: a netlink-attached program stays on the interface.
  if (prog_) xdp_program__close(prog_);
}

Result<XdpProgram> XdpProgram::from_object(bpf_object* obj) {
  xdp_program* p = xdp_program__from_bpf_obj(obj, "xdp");
  long err = libxdp_get_error(p);
  if (err) return libbpf_error(int(err), "xdp: wrapping the program with libxdp");
  XdpProgram out;
  out.prog_ = p;
  return out;
}

int XdpProgram::fd() const {
  return prog_ ? xdp_program__fd(prog_) : -1;
}

Result<XdpAttachment> XdpProgram::attach(int ifindex, XdpMode mode) {
  auto before = attached_prog_id(ifindex);
  if (!before) return before.error();
  if (*before != 0)
    return Error{EEXIST, "xdp: interface already has an XDP program (id " +
                             std::to_string(*before) +
                             "); detach it first (heliosctl detach, or xdp-loader unload)"};
  xdp_attach_mode m = mode == XdpMode::kNative ? XDP_MODE_NATIVE : XDP_MODE_SKB;
  int err = xdp_program__attach(prog_, ifindex, m, 0);
  if (err) {
    if (err == -EOPNOTSUPP && mode == XdpMode::kNative)
      return missing_feature("native XDP on this interface",
                             "the driver refused native mode; retry with --mode skb");
    if (err == -EPERM) return libbpf_error(err, "xdp: attach");
    if (err == -EACCES || err == -EINVAL)
      return missing_feature("XDP program load", std::string("the kernel refused the program: ") +
                                                     std::strerror(-err) +
                                                     " (run with debug logs for the verifier)");
    return libbpf_error(err, "xdp: attaching to ifindex " + std::to_string(ifindex));
  }
  XdpAttachment a;
  a.ifindex = ifindex;
  a.mode = mode;
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  if (libxdp_get_error(mp) || !mp) {
    // Attached but libxdp cannot describe it: query the kernel directly.
    auto id = attached_prog_id(ifindex);
    a.dispatcher = false;
    a.prog_id = id ? *id : 0;
    return a;
  }
  a.dispatcher = !xdp_multiprog__is_legacy(mp);
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd(), &info, &len) == 0) a.prog_id = info.id;
  xdp_multiprog__close(mp);
  return a;
}

Result<int> interface_index(const std::string& name) {
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) return Error::from_errno("xdp: no interface '" + name + "'");
  return int(idx);
}

std::string interface_driver(const std::string& name) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(&info);
  std::string out;
  if (ioctl(fd, SIOCETHTOOL, &ifr) == 0) out = info.driver;
  close(fd);
  return out;
}

Result<uint32_t> attached_prog_id(int ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  int err = bpf_xdp_query(ifindex, 0, &q);
  if (err) return libbpf_error(err, "xdp: querying ifindex " + std::to_string(ifindex));
  if (q.prog_id) return q.prog_id;
  if (q.drv_prog_id) return q.drv_prog_id;
  if (q.skb_prog_id) return q.skb_prog_id;
  return q.hw_prog_id;
}

namespace {
std::string prog_name_of(xdp_program* p) {
  const char* n = xdp_program__name(p);
  return n ? n : "";
}
}  // namespace

Status detach_xdp(int ifindex, uint32_t prog_id, const std::string& prog_name) {
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  long err = libxdp_get_error(mp);
  if (err == -ENOENT || (!err && !mp)) return {};  // nothing attached
  if (err)
    return libbpf_error(int(err), "xdp: reading programs on ifindex " + std::to_string(ifindex));
  auto ours = [&](xdp_program* p) {
    if (prog_id) return xdp_program__id(p) == prog_id;
    return prog_name_of(p) == prog_name;
  };
  Status st;
  if (xdp_multiprog__is_legacy(mp)) {
    xdp_program* main = xdp_multiprog__main_prog(mp);
    if (main && ours(main)) {
      int e = xdp_multiprog__detach(mp);
      if (e) st = libbpf_error(e, "xdp: detaching from ifindex " + std::to_string(ifindex));
    }
  } else {
    for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p;
         p = xdp_multiprog__next_prog(p, mp)) {
      if (!ours(p)) continue;
      int e = xdp_program__detach(p, ifindex, xdp_multiprog__attach_mode(mp), 0);
      if (e) st = libbpf_error(e, "xdp: detaching from the dispatcher");
      break;
    }
  }
  xdp_multiprog__close(mp);
  return st;
}

namespace {
int log_line(const char* lib, bool warn, const char* fmt, va_list args) {
  char buf[1024];
  vsnprintf(buf, sizeof(buf), fmt, args);
  size_t n = strlen(buf);
  while (n && buf[n - 1] == '\n') buf[--n] = 0;
  if (warn)
    log::warn("{}: {}", lib, buf);
  else
    log::debug("{}: {}", lib, buf);
  return 0;
}
int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  // Verifier logs and the dispatcher probe arrive as warnings; errors we act on are returned
  // as values, so the library chatter stays at debug (heliosctl -v shows it).
  (void)level;
  return log_line("libbpf", false, fmt, args);
}
int libxdp_print(enum libxdp_print_level level, const char* fmt, va_list args) {
  // libxdp reports the dispatcher refusal as a warning although it then falls back; keep it at
  // debug, the fallback is reported by XdpAttachment::describe().
  (void)level;
  return log_line("libxdp", false, fmt, args);
}
}  // namespace

void route_bpf_library_logs() {
  libbpf_set_print(libbpf_print);
  libxdp_set_print(libxdp_print);
}

}  // namespace helios::bpf
