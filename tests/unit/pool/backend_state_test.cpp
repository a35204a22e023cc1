// The backend state machine's table (pool/backend.h), checked pair by pair against the moves the
// pool and the workers make, and Backend::move_to refusing the rest without changing state.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "pool/backend.h"

using namespace helios::pool;

TEST_CASE("backend states: exactly the pool's moves are allowed") {
  constexpr BackendState all[] = {BackendState::kIdle, BackendState::kLeased,
                                  BackendState::kCleanup, BackendState::kClosed};
  const std::set<std::string> legal = {"closed->idle",   "closed->leased",  "idle->leased",
                                       "leased->idle",   "leased->cleanup", "leased->leased",
                                       "cleanup->idle",  "cleanup->leased", "idle->closed",
                                       "leased->closed", "cleanup->closed", "closed->closed"};
  std::set<std::string> allowed;
  for (BackendState a : all)
    for (BackendState b : all)
      if (backend_transition_allowed(a, b))
        allowed.insert(std::string(to_string(a)) + "->" + to_string(b));
  CHECK(allowed == legal);
}

#ifdef NDEBUG  // a debug build asserts on the refused move instead
TEST_CASE("backend states: move_to refuses an illegal move and keeps the state") {
  Backend b;
  CHECK(b.move_to(BackendState::kIdle));
  CHECK_FALSE(b.move_to(BackendState::kCleanup));  // an idle backend has no client to clean up
  CHECK(b.state == BackendState::kIdle);
  CHECK(b.move_to(BackendState::kLeased));
  CHECK(b.move_to(BackendState::kCleanup));
  CHECK(b.move_to(BackendState::kClosed));
}
#endif
