#include "proxy/client_state.h"

namespace helios::proxy {

const char* to_string(ClientState s) {
  switch (s) {
    case ClientState::kStartup:
      return "startup";
    case ClientState::kAuthLookup:
      return "auth_lookup";
    case ClientState::kAuthSasl:
      return "auth_sasl";
    case ClientState::kAuthMd5:
      return "auth_md5";
    case ClientState::kWelcome:
      return "welcome";
    case ClientState::kIdle:
      return "idle";
    case ClientState::kQueued:
      return "queued";
    case ClientState::kThrottled:
      return "throttled";
    case ClientState::kActive:
      return "active";
    case ClientState::kClosing:
      return "closing";
    case ClientState::kFree:
      return "free";
  }
  return "?";
}

bool client_transition_allowed(ClientState from, ClientState to) {
  using S = ClientState;
  if (from == to) return from != S::kFree;
  if (to == S::kClosing) return from != S::kFree;
  switch (from) {
    case S::kFree:
      return to == S::kStartup;
    case S::kStartup:
    case S::kAuthLookup:
      // trust auth, or an auth file lookup that answered at once, skips the lookup state
      return to == S::kAuthLookup || to == S::kAuthSasl || to == S::kAuthMd5 || to == S::kWelcome ||
             to == S::kIdle;
    case S::kAuthSasl:
    case S::kAuthMd5:
      return to == S::kWelcome || to == S::kIdle;
    case S::kWelcome:
      return to == S::kIdle;  // the first backend is given back at once (send_welcome)
    case S::kIdle:
      return to == S::kThrottled || to == S::kQueued;
    case S::kThrottled:
      return to == S::kIdle || to == S::kQueued;
    case S::kQueued:
      return to == S::kActive || to == S::kIdle;
    case S::kActive:
      return to == S::kIdle;
    case S::kClosing:
      return to == S::kFree;
  }
  return false;
}

}  // namespace helios::proxy
