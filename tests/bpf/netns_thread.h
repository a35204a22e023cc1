// Runs a function on a thread that has its own network namespace (unshare(CLONE_NEWNET) is
// per thread), so a test can make interfaces and routes that vanish with the thread. Commands
// started with system() from that thread inherit the namespace. Results travel back as strings:
// assertions stay on the doctest thread.
#pragma once

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>
#include <thread>

namespace helios::bpf::test {

inline bool set_link_up(const char* name) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  close(fd);
  return ok;
}

// Returns "" on success or the first failure; "SKIP: ..." when the namespace cannot be made.
inline std::string in_new_netns(const std::function<std::string()>& fn) {
  std::string result;
  std::thread t([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      result = std::string("SKIP: unshare(CLONE_NEWNET): ") + std::strerror(errno);
      return;
    }
    if (!set_link_up("lo")) {
      result = "SKIP: cannot bring lo up in the new namespace";
      return;
    }
    result = fn();
  });
  t.join();
  return result;
}

}  // namespace helios::bpf::test
