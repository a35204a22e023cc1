// CancelRequests (the process id layout: cancel_key.h). A key of this instance goes to the worker
// owning the client (on_cancel, worker_lease.cpp): the one its key names, or the one it moved to
// (MovedClients); with [fleet], a key carrying another live
// instance's peer number goes on to that instance (fleet/cancel_forwarder.h), once: the
// forwarded request is marked, and a marked one is only ever looked up here.
#include <openssl/rand.h>

#include <random>

#include "proxy/worker.h"

namespace helios::proxy {

uint32_t Worker::cancel_secret() {
  uint32_t v = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1)
    v = std::random_device{}();  // getrandom() underneath
  return v;
}

void Worker::route_cancel(int32_t pid, uint32_t key) {
  CancelKeyLayout::Decoded d = ctx_.cancel_keys.decode(pid);
  if (!d.ours) return;  // not a key this proxy made: nothing to cancel, and no answer
  fleet::FleetAgent* fleet = ctx_.fleet;
  if (d.forwarded) {
    if (fleet) fleet->cancels().note_received();
  } else if (fleet && d.peer != 0 && d.peer != fleet->peer()) {
    switch (fleet->cancels().forward(d.peer, CancelKeyLayout::mark_forwarded(pid), int32_t(key))) {
      case fleet::CancelForwarder::Outcome::kQueued:
      case fleet::CancelForwarder::Outcome::kBusy:
        return;
      case fleet::CancelForwarder::Outcome::kUnknownPeer:
        break;  // perhaps a number this instance held before: its key check decides
    }
  }
  if (auto at = ctx_.moved.find(pid, key)) {  // the client moved to another worker since login
    uint32_t slot = at->slot;
    ctx_.workers[at->worker]->post([slot, key](Worker& w) { w.on_cancel(slot, key); }, *this);
    return;
  }
  if (d.worker >= ctx_.workers.size()) return;
  uint32_t slot = d.slot;
  ctx_.workers[d.worker]->post([slot, key](Worker& w) { w.on_cancel(slot, key); }, *this);
}

}  // namespace helios::proxy
