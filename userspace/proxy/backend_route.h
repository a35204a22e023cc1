// Which host a lease goes to (issue 17). With one [backend] host: always the client's pool.
// With several: the primary (HostTable::primary()), except that with [routing]
// read_write_split a transaction-mode client that is not pinned, sending a batch the session
// layer proves read-only (session/read_only.h) or BEGIN READ ONLY, goes to the readable replica
// with the least outstanding work (leased + waiting backends of its pool there); none readable:
// the primary. The hint /* helios:primary */ forces the primary.
#pragma once

#include <string>

#include "common/clock.h"
#include "config/config.h"
#include "pool/backend.h"
#include "pool/pool.h"

namespace helios::proxy {

struct SharedContext;
struct Client;

// The pool to wait in for the client's next lease (also stored in c->wait_pool), or null when a
// primary is needed and none is known.
pool::Pool* route_lease(SharedContext& ctx, const config::Config& cfg, Client* c, Nanos now);

// A lease ends: one on the primary starts read-your-writes tracking for the client.
void note_lease_end(const SharedContext& ctx, const config::Config& cfg, Client* c, Nanos now);

// A granted backend is still right for the lease: a primary lease's host still holds the role
// and the backend is not in recovery (in_hot_standby; if it is, its host loses the role now).
bool lease_host_ok(SharedContext& ctx, const Client* c, const pool::Backend* b);

// The client-facing reason when no primary is known (SQLSTATE 08006).
std::string no_primary_message(const SharedContext& ctx);

}  // namespace helios::proxy
