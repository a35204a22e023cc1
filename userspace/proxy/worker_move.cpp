// Workers that follow the load ([proxy] worker_scaling = "load"; docs/architecture.md, "Workers
// that follow the load"). The control thread decides how many workers are awake
// (load_governor.h, SharedContext::active_workers); this file moves clients to match:
//   - a parked worker (id >= active_workers) hands every client at rest to the awake ones, so
//     that it sleeps except to accept and log in new clients (which it then hands over too);
//   - an awake worker that started clearly more leases than the awake average over the last
//     half second hands some of its recently busy clients at rest to the least busy one.
// A client is at rest between two transactions: no backend, nothing owed or queued either way,
// only its multishot recv in flight. The move cancels that recv; when the cancellation completes
// and the client is still at rest, the Client is handed over by mail and its new worker arms a
// recv on the same socket. Bytes that arrived meanwhile wait in the socket; a client that sent
// some before the cancel took effect simply stays. The client keeps its BackendKeyData: its
// cancels find it through SharedContext::moved (moved_clients.h).
#include <algorithm>

#include "common/log.h"
#include "proxy/startup_state.h"
#include "proxy/worker.h"

namespace helios::proxy {
namespace {
constexpr Nanos kFollowEvery = 100 * kNanosPerMilli;
constexpr Nanos kBalanceEvery = 500 * kNanosPerMilli;
constexpr uint32_t kMovesPerRound = 1024;  // per kFollowEvery: a parked worker empties at 10k/s
// An awake worker hands clients over only when its leases exceed the awake mean by both.
constexpr double kImbalance = 1.3;
constexpr uint64_t kMinSurplus = 50;  // leases per kBalanceEvery
// "Recently busy": had a lease within this; the clients whose moving moves load.
constexpr Nanos kRecent = 1000 * kNanosPerMilli;
}  // namespace

bool Worker::at_rest(const Client* c) const {
  return c->state == ClientState::kIdle && !c->moving && c->issued_pid != 0 && !c->backend &&
         !c->sending_to && !c->pinned && !c->startup && !c->fatal_sent && c->recv_armed &&
         c->inflight == 1 && !c->recv_paused && !c->recv_starved && c->outstanding == 0 &&
         c->pending_queries == 0 && !c->throttled && !c->gate_waiting && !c->awaiting_primary &&
         !c->txn_lost && !c->loss_deferred && c->framer.at_boundary() && !c->wire.unsynced &&
         !c->wire.skip_to_sync && c->to_backend.empty() && !c->to_backend.in_flight() &&
         c->to_client.empty() && !c->to_client.in_flight() && c->tracker.empty() &&
         (!c->tls || (c->tls->out().empty() && !c->sending_tls)) && path_->may_move(c);
}

void Worker::begin_move(Client* c, uint16_t to) {
  c->moving = true;
  c->move_to = to;
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_cancel64(sqe, pack(Op::kClientRecv, c->slot, c->gen), 0);
  sqe->user_data = pack(Op::kCancelOp, 0, 0);
}

bool Worker::finish_move(Client* c) {
  // Its recv has ended: at rest now means at rest with nothing at all in flight.
  c->recv_armed = true;
  ++c->inflight;
  bool still = at_rest(c);
  c->recv_armed = false;
  --c->inflight;
  uint16_t to = c->move_to;
  if (!still || stopping_ || to >= ctx_.workers.size() || to == id_) return false;
  c->tracker.clear(track_pool_);
  c->framer.release_scratch();
  c->to_client.clear(*chunks_);
  c->to_backend.clear(*chunks_);
  auto moved = std::make_shared<Client>(std::move(*c));
  // The slot is free again; the client lives on (its socket, tenant and counts go with it).
  uint32_t slot = c->slot, gen = c->gen;
  *c = Client{};
  c->slot = slot;
  c->gen = gen;
  free_slots_.push_back(slot);
  stats_.clients.fetch_sub(1, std::memory_order_relaxed);
  stats_.moved_out.fetch_add(1, std::memory_order_relaxed);
  ctx_.workers[to]->post([moved](Worker& w) { w.adopt(moved); }, *this);
  return true;
}

void Worker::adopt(std::shared_ptr<Client> moved) {
  Client* c = take_slot();
  if (!c) {
    // No slot to number it by (cancel_key.h): it cannot live here. Closed as a failed move, with
    // everything it was counted in given back.
    log::error("worker {}: no client slot for a client handed over; closing it", id_);
    if (moved->counted) {
      ctx_.client_connections.fetch_sub(1, std::memory_order_relaxed);
      ctx_.on_client_closed(moved.get());
    }
    if (moved->moved) ctx_.moved.forget(moved->issued_pid, moved->cancel_key);
    ctx_.tenants.release(moved->tenant);
    ::close(moved->fd);
    return;
  }
  uint32_t slot = c->slot, gen = c->gen;
  *c = std::move(*moved);
  c->slot = slot;
  c->gen = gen;
  c->moving = false;
  c->moved = true;
  c->timer_prev = c->timer_next = nullptr;
  c->inflight = 0;
  c->recv_armed = false;
  stats_.clients.fetch_add(1, std::memory_order_relaxed);
  stats_.moved_in.fetch_add(1, std::memory_order_relaxed);
  ctx_.moved.record(c->issued_pid, c->cancel_key, {id_, slot});
  arm_client_recv(c);
  if (stopping_) drain_if_idle(c);
}

template <class Want, class To>
uint32_t Worker::move_some(uint32_t budget, Want&& want, To&& to) {
  uint32_t moved = 0;
  for (uint32_t seen = 0; seen < slots_used_ && moved < budget; ++seen) {
    if (move_cursor_ >= slots_used_) move_cursor_ = 0;
    Client* c = &client_chunks_[move_cursor_ / kClientChunkSize][move_cursor_ % kClientChunkSize];
    ++move_cursor_;
    if (!at_rest(c) || !want(c)) continue;
    uint16_t dest = to(c);
    if (dest == id_) continue;
    begin_move(c, dest);
    ++moved;
  }
  return moved;
}

void Worker::follow_load(Nanos now) {
  if (now < next_follow_) return;
  next_follow_ = now + kFollowEvery;
  size_t workers = ctx_.workers.size();
  if (stopping_ || workers < 2 || cfg_->proxy.worker_scaling != config::WorkerScaling::kLoad)
    return;
  uint32_t awake = std::clamp<uint32_t>(ctx_.active_workers.load(std::memory_order_relaxed), 1,
                                        uint32_t(workers));
  if (id_ >= awake) {  // parked: everyone at rest goes to the awake workers
    if (stats_.clients.load(std::memory_order_relaxed) > 0)
      move_some(
          kMovesPerRound, [](const Client*) { return true; },
          [&](const Client*) { return uint16_t(move_rr_++ % awake); });
    return;
  }
  if (awake < 2 || now < next_balance_) return;
  next_balance_ = now + kBalanceEvery;
  // Leases each awake worker started since the last comparison.
  seen_leases_.resize(workers, 0);
  std::vector<uint64_t> delta(awake);
  uint64_t sum = 0;
  for (uint32_t i = 0; i < awake; ++i) {
    uint64_t v = ctx_.workers[i]->stats().leases.load(std::memory_order_relaxed);
    delta[i] = v - std::min(v, seen_leases_[i]);
    seen_leases_[i] = v;
    sum += delta[i];
  }
  double mean = double(sum) / awake;
  uint64_t mine = delta[id_];
  if (double(mine) < kImbalance * mean || double(mine) - mean < double(kMinSurplus)) return;
  uint16_t least = 0;
  for (uint32_t i = 1; i < awake; ++i)
    if (delta[i] < delta[least]) least = uint16_t(i);
  // Hand over the share of the recently busy clients that carries the surplus.
  uint32_t busy = 0;
  for (auto& chunk : client_chunks_)
    for (uint32_t i = 0; i < kClientChunkSize; ++i)
      if (chunk[i].state != ClientState::kFree && chunk[i].ran_transaction &&
          now - chunk[i].last_activity < kRecent)
        ++busy;
  auto share = uint32_t(double(busy) * (double(mine) - mean) / double(mine) + 0.5);
  share = std::min(share, kMovesPerRound);
  if (share == 0) return;
  uint32_t n = move_some(
      share,
      [&](const Client* c) { return c->ran_transaction && now - c->last_activity < kRecent; },
      [&](const Client*) { return least; });
  log::debug(
      "worker {}: {} leases against a mean of {:.0f}: handing {} of {} busy clients to "
      "worker {}",
      id_, mine, mean, n, busy, least);
}

}  // namespace helios::proxy
