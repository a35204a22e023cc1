#include "bpf/local_route.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/unique_fd.h"

namespace helios::bpf {

namespace {

struct RouteRequest {
  nlmsghdr nh;
  rtmsg rt;
  char attrs[64];
};

void add_attr(RouteRequest& req, uint16_t type, const void* data, size_t len) {
  auto* rta =
      reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req) + NLMSG_ALIGN(req.nh.nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = RTA_LENGTH(len);
  std::memcpy(RTA_DATA(rta), data, len);
  req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

// Sends one request and waits for its ack; returns 0 or a positive errno.
int transact(uint16_t type, uint16_t flags, const IpAddr& addr, int ifindex) {
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return errno;
  timeval tv{2, 0};  // every wait has a timeout
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

  RouteRequest req{};
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
  req.nh.nlmsg_type = type;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  req.nh.nlmsg_seq = 1;
  bool v4 = addr.is_v4();
  req.rt.rtm_family = v4 ? AF_INET : AF_INET6;
  req.rt.rtm_dst_len = v4 ? 32 : 128;
  req.rt.rtm_table = RT_TABLE_LOCAL;
  req.rt.rtm_protocol = RTPROT_STATIC;
  req.rt.rtm_scope = RT_SCOPE_HOST;
  req.rt.rtm_type = RTN_LOCAL;
  add_attr(req, RTA_DST, v4 ? addr.bytes + 12 : addr.bytes, v4 ? 4 : 16);
  uint32_t oif = uint32_t(ifindex);
  add_attr(req, RTA_OIF, &oif, sizeof(oif));

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd.get(), &req, req.nh.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) < 0)
    return errno;
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0) return errno == EAGAIN ? ETIMEDOUT : errno;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, size_t(n)); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != 1) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        return -e->error;
      }
    }
  }
}

}  // namespace

Result<bool> add_local_route(const IpAddr& addr, int ifindex) {
  int err = transact(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, addr, ifindex);
  if (err == 0) return true;
  if (err == EEXIST) return false;
  errno = err;
  return Error::from_errno("vip: adding route local " + format_ip(addr));
}

Status del_local_route(const IpAddr& addr, int ifindex) {
  int err = transact(RTM_DELROUTE, 0, addr, ifindex);
  if (err == 0 || err == ESRCH || err == ENOENT) return {};
  errno = err;
  return Error::from_errno("vip: removing route local " + format_ip(addr));
}

}  // namespace helios::bpf
