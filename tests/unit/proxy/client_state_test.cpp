// The client state machine's table: every pair of states is checked against the transitions
// the worker makes (listed here by hand, from the call sites of Worker::set_state), so adding a
// transition to either side without the other fails.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "proxy/client_state.h"

using namespace helios::proxy;

namespace {

constexpr ClientState kAll[] = {
    ClientState::kStartup, ClientState::kAuthLookup, ClientState::kAuthSasl,  ClientState::kAuthMd5,
    ClientState::kWelcome, ClientState::kIdle,       ClientState::kThrottled, ClientState::kQueued,
    ClientState::kActive,  ClientState::kClosing,    ClientState::kFree,
};

std::string edge(ClientState a, ClientState b) {
  return std::string(to_string(a)) + "->" + to_string(b);
}

}  // namespace

TEST_CASE("client states: exactly the transitions the worker makes are allowed") {
  const std::set<std::string> legal = {
      "free->startup",
      // login: a lookup on a connector thread, or an auth file answered at once; trust skips
      // the exchange; a pool that knows the server's parameters welcomes at once (idle)
      "startup->auth_lookup", "startup->auth_sasl", "startup->auth_md5", "startup->welcome",
      "startup->idle", "auth_lookup->auth_sasl", "auth_lookup->auth_md5", "auth_lookup->welcome",
      "auth_lookup->idle", "auth_sasl->welcome", "auth_sasl->idle", "auth_md5->welcome",
      "auth_md5->idle", "welcome->idle",
      // work: QPS tokens, then the pool's queue, then a lease; failures answer from a wait
      "idle->throttled", "idle->queued", "throttled->idle", "throttled->queued", "queued->active",
      "queued->idle", "active->idle",
      // the end
      "closing->free"};
  std::set<std::string> allowed;
  for (ClientState a : kAll)
    for (ClientState b : kAll)
      if (a != b && a != ClientState::kFree && b == ClientState::kClosing) {
        CHECK_MESSAGE(client_transition_allowed(a, b), edge(a, b));  // close from anywhere
      } else if (a != b && client_transition_allowed(a, b)) {
        allowed.insert(edge(a, b));
      }
  CHECK(allowed == legal);
}

TEST_CASE("client states: illegal transitions are refused") {
  CHECK_FALSE(client_transition_allowed(ClientState::kFree, ClientState::kIdle));
  CHECK_FALSE(client_transition_allowed(ClientState::kFree, ClientState::kClosing));
  CHECK_FALSE(client_transition_allowed(ClientState::kFree, ClientState::kFree));
  CHECK_FALSE(client_transition_allowed(ClientState::kIdle, ClientState::kActive));
  CHECK_FALSE(client_transition_allowed(ClientState::kIdle, ClientState::kFree));
  CHECK_FALSE(client_transition_allowed(ClientState::kActive, ClientState::kStartup));
  CHECK_FALSE(client_transition_allowed(ClientState::kActive, ClientState::kQueued));
  CHECK_FALSE(client_transition_allowed(ClientState::kClosing, ClientState::kIdle));
  CHECK_FALSE(client_transition_allowed(ClientState::kWelcome, ClientState::kAuthSasl));
  CHECK_FALSE(client_transition_allowed(ClientState::kQueued, ClientState::kThrottled));
  // staying put is a no-op, except for a free slot
  CHECK(client_transition_allowed(ClientState::kAuthSasl, ClientState::kAuthSasl));
  CHECK(client_transition_allowed(ClientState::kIdle, ClientState::kIdle));
}
