// Fleet shares as the local limit ([fleet], tenant/fleet_caps.h): the checks enforce the share
// instead of the configured value, a share of 0 refuses, an unlimited tenant stays unlimited,
// and a gate whose share grows lets its waiters through.
#include <doctest/doctest.h>

#include "tenant/fleet_caps.h"
#include "tenant/tenant_gates.h"
#include "tenant/tenant_state.h"

using namespace helios::tenant;

TEST_CASE("a fleet share is the local max_connections; 0 refuses; unlimited stays unlimited") {
  TenantLimits l;
  l.max_connections = 5;
  TenantState s(0, "acme", l, 0);
  FleetCaps caps(4);
  CHECK(caps.connections(0) == TenantState::kNoCap);
  caps.set_connections(0, 2);
  CHECK(s.try_admit_connection(true, caps.connections(0)));
  CHECK(s.try_admit_connection(true, caps.connections(0)));
  CHECK_FALSE(s.try_admit_connection(false, caps.connections(0)));
  CHECK(s.rejections(Rejection::kConnections) == 0);  // a login that may wait is not counted
  caps.set_connections(0, 0);
  s.release_connection();
  CHECK_FALSE(s.try_admit_connection(true, caps.connections(0)));
  CHECK(s.rejections(Rejection::kConnections) == 1);
  TenantState free(1, "free", TenantLimits{}, 0);
  CHECK(free.try_admit_connection(true, 0));           // no configured limit: no share applies
  CHECK(caps.connections(99) == TenantState::kNoCap);  // out of range: no share
}

TEST_CASE("a gate enforces the max_active share and admits waiters when it grows") {
  TenantLimits l;
  l.max_active = 4;
  TenantState s(0, "acme", l, 0);
  FleetCaps caps(2);
  TenantGates gates(1);
  gates.set_fleet_caps(&caps);
  caps.set_active(0, 1);
  CHECK(gates.enter(&s, {0, 1, 1}));
  CHECK_FALSE(gates.enter(&s, {0, 2, 1}));
  CHECK_FALSE(gates.admit_waiting(&s).has_value());  // share still 1
  caps.set_active(0, 2);
  auto next = gates.admit_waiting(&s);
  REQUIRE(next.has_value());
  CHECK(next->slot == 2);
  CHECK(s.active_leases() == 2);
}
