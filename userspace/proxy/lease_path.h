// How a lease's bytes move once a client is paired with a backend: the seam between the generic
// relay and a data path. The relay (worker_relay_*.cpp, worker_client.cpp, worker_lease.cpp)
// calls these at fixed points and never asks which path a client is on.
//   UserspacePath  every byte goes through the worker's io_uring relay: nothing to do.
//   KernelPath     a lease's replies may be carried by the sockmap verdict (kernel_path.h).
#pragma once

#include <cstdint>

namespace helios::pool {
struct Backend;
}

namespace helios::proxy {

struct Client;

class LeasePath {
 public:
  virtual ~LeasePath() = default;

  // ---- the worker's loop
  virtual void start() = 0;      // arm what the path listens to (on the worker's thread)
  virtual void on_events() = 0;  // its event source completed (Op::kSpliceEvents)
  virtual void on_tick() = 0;

  // ---- a lease
  // Both sockets are quiet at a lease's start: the path may prepare them.
  virtual void lease_started(Client* c, pool::Backend* b) = 0;
  // Right before the worker sends queued requests: the path may take their replies.
  virtual void before_backend_send(Client* c, pool::Backend* b) = 0;
  // The lease's replies are the path's now (the worker does not see them).
  virtual bool holds(const Client* c) const = 0;
  // The worker must act on the client (its input, a timer, a close): a lease the path holds
  // comes back first, so the worker's counts are current. False if the client was closed.
  virtual bool settle(Client* c) = 0;
  virtual void take_back_all() = 0;  // drain: every lease comes back to the worker

  // ---- sockets
  virtual void client_read(Client* c, uint32_t n) = 0;
  virtual void client_written(Client* c, uint32_t n) = 0;
  // A client recv that completed with EAGAIN because the path took the bytes that woke it.
  virtual bool recv_preempted(const Client* c, int res) const = 0;
  // The worker may write to the client now: the path's bytes to it have left.
  virtual bool client_writable(Client* c) = 0;
  virtual void client_closing(Client* c) = 0;
  virtual void client_freed(Client* c) = 0;
  // The client, at rest (no lease), may move to another worker: the path holds nothing of it
  // (the kernel path keeps clients whose socket joined its engine: kernel_path.cpp).
  virtual bool may_move(const Client* c) const = 0;
  // A backend recv completed (before its bytes are relayed).
  virtual void backend_read(pool::Backend* b, int res) = 0;
  // The first bytes of a backend's input that finish a message the path began: relayed raw;
  // returns how many. *ready: they ended with a ReadyForQuery of the client's.
  virtual uint32_t resume_backend(pool::Backend* b, Client* c, int32_t bid, const uint8_t* data,
                                  uint32_t len, bool* ready) = 0;
  // The path forwarded part of a reply message it did not finish (its server went away).
  virtual bool reply_cut(const pool::Backend* b) const = 0;
};

class UserspacePath final : public LeasePath {
 public:
  void start() override {}
  void on_events() override {}
  void on_tick() override {}
  void lease_started(Client*, pool::Backend*) override {}
  void before_backend_send(Client*, pool::Backend*) override {}
  bool holds(const Client*) const override { return false; }
  bool settle(Client*) override { return true; }
  void take_back_all() override {}
  void client_read(Client*, uint32_t) override {}
  void client_written(Client*, uint32_t) override {}
  bool recv_preempted(const Client*, int) const override { return false; }
  bool client_writable(Client*) override { return true; }
  void client_closing(Client*) override {}
  void client_freed(Client*) override {}
  bool may_move(const Client*) const override { return true; }
  void backend_read(pool::Backend*, int) override {}
  uint32_t resume_backend(pool::Backend*, Client*, int32_t, const uint8_t*, uint32_t,
                          bool*) override {
    return 0;
  }
  bool reply_cut(const pool::Backend*) const override { return false; }
};

}  // namespace helios::proxy
