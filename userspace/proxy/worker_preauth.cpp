// Before and around authentication: the per-source limit on unauthenticated connections, and
// refusals that are counted by reason and logged at a bounded rate (an attacker provokes them
// at will, so one line each would let it fill the disk).
#include <string>

#include "common/log.h"
#include "proxy/startup_state.h"
#include "proxy/worker.h"

namespace helios::proxy {

bool Worker::enter_preauth(Client* c) {
  StartupState& st = *c->startup;
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  if (::getpeername(c->fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return true;
  st.peer = peer;
  st.source = source_key_of(peer);
  if (!st.source) return true;
  if (!ctx_.preauth.try_enter(*st.source, cfg_->proxy.max_unauthenticated_per_source)) return false;
  st.source_counted = true;
  return true;
}

void Worker::leave_preauth(Client* c) {
  if (!c->startup || !c->startup->source_counted) return;
  c->startup->source_counted = false;
  ctx_.preauth.leave(*c->startup->source);
}

void Worker::refuse_preauth(Client* c, PreauthRefusal why, std::string_view sqlstate,
                            std::string_view message) {
  if (c->state == ClientState::kClosing || c->state == ClientState::kFree) return;
  ctx_.metrics.count_preauth_refusal(why);
  security_log(c, std::string("refused before authentication (") + preauth_refusal_name(why) +
                      "): " + std::string(message));
  fail_startup(c, sqlstate, message);
  // Stop reading: whatever else it sends (the rest of an oversized message) stays in the
  // kernel and is dropped with the socket, instead of cycling through the receive buffers.
  if (c->state == ClientState::kClosing) pause_client_input(c);
}

void Worker::refuse_login(Client* c, LoginFailure why, std::string_view sqlstate,
                          std::string_view message, std::string_view log_detail) {
  if (c->state == ClientState::kClosing || c->state == ClientState::kFree) return;
  ctx_.metrics.count_login_failure(why);
  std::string line =
      std::string("login refused (") + login_failure_name(why) + "): " + std::string(message);
  if (!log_detail.empty()) line += std::string(" (") + std::string(log_detail) + ")";
  security_log(c, line);
  fail_startup(c, sqlstate, message);
}

}  // namespace helios::proxy
