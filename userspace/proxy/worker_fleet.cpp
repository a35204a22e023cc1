// [fleet]: a login whose tenant's local share of max_connections is full waits for the fleet
// agent (docs/fleet.md, "Connections"): admitted when a renewal gives this instance room,
// refused with 53300 after admission_wait.
#include "pg/sqlstate.h"
#include "proxy/client.h"
#include "proxy/startup_state.h"
#include "proxy/worker.h"

namespace helios::proxy {

void Worker::wait_fleet_share(Client* c, pool::LoginSecret login) {
  c->startup->fleet_login = std::move(login);
  ctx_.fleet_admission.add(
      {id_, c->slot, c->gen, c->tenant, monotonic_now() + ctx_.fleet->config().admission_wait});
  ctx_.fleet->add_waiting(c->tenant->index(), +1);
  ctx_.fleet->kick();
}

void Worker::on_fleet_admission(uint32_t slot, uint32_t gen, tenant::TenantState* t,
                                bool admitted) {
  Client* c = client_at(slot, gen);
  if (!c || c->state == ClientState::kClosing || !c->startup || !c->startup->fleet_login ||
      c->tenant != t) {
    if (admitted) t->release_connection();  // the client left while it waited
    return;
  }
  pool::LoginSecret login = std::move(*c->startup->fleet_login);
  c->startup->fleet_login.reset();
  if (!admitted) {
    t->record_rejection(tenant::Rejection::kConnections);
    refuse_login(c, LoginFailure::kTenantQuota, pg::sqlstate::kTooManyConnections,
                 "too many connections for tenant \"" + std::string(t->name()) +
                     "\": its max_connections is " + std::to_string(t->max_connections()) +
                     " across the fleet");
    return;
  }
  c->tenant_counted = true;
  finish_login(c, std::move(login));
}

}  // namespace helios::proxy
