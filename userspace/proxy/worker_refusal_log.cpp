// Log lines about refused clients: failed logins, protocol violations, quota and limit refusals.
// An attacker (or a misbehaving application) provokes them at will, so they are rate-limited
// per worker (kSecurityLogPerSecond; the rest are counted and summarised in the next line), and
// each names who was refused: source address, user and tenant when known.
#include <sys/socket.h>

#include <string>

#include "common/log.h"
#include "proxy/startup_state.h"
#include "proxy/worker.h"

namespace helios::proxy {

namespace {

std::string identity(const Client* c) {
  std::string who = "client";
  sockaddr_storage peer{};
  std::string_view user;
  std::string_view tenant;
  if (c->startup) {
    peer = c->startup->peer;
    user = c->startup->user;
    tenant = c->startup->tenant;
  } else {
    socklen_t len = sizeof peer;
    if (c->fd < 0 || ::getpeername(c->fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0)
      peer.ss_family = AF_UNSPEC;
  }
  if (c->pool && user.empty()) user = c->pool->key().user;
  if (c->tenant) tenant = c->tenant->name();
  if (peer.ss_family != AF_UNSPEC) who += " " + peer_text(peer);
  if (!user.empty()) who += " user \"" + std::string(user) + "\"";
  if (!tenant.empty()) who += " tenant \"" + std::string(tenant) + "\"";
  return who;
}

}  // namespace

void Worker::security_log(const Client* c, std::string_view what) {
  uint64_t suppressed = 0;
  if (!security_log_.allow(monotonic_now(), &suppressed)) return;
  std::string who = identity(c);
  if (suppressed > 0)
    log::warn("worker {}: {}: {} ({} similar lines suppressed)", id_, who, what, suppressed);
  else
    log::warn("worker {}: {}: {}", id_, who, what);
}

void Worker::refuse_quota(Client* c, tenant::Rejection why, std::string_view message) {
  if (c->tenant) c->tenant->record_rejection(why);
  security_log(c, std::string("refused by a quota (") + tenant::rejection_name(why) +
                      "): " + std::string(message));
}

}  // namespace helios::proxy
