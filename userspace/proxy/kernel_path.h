// The kernel data path (docs/datapath.md, "The proxy's kernel leases"): a LeasePath whose leases'
// replies may be carried by the sockmap verdict. One per worker, on the worker's thread.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "datapath/kernel_lease.h"
#include "datapath/splice_continuation.h"
#include "pool/backend.h"
#include "proxy/lease_path.h"

namespace helios::proxy {

class Worker;

// A backend's side of the kernel path: its socket's place in the splice engine (joined at its
// first lease on this path, left when the connection closes) and where its stream resumes after
// a kernel lease.
struct BackendKernel final : pool::PathState {
  explicit BackendKernel(bpf::SpliceEngine& e) : engine(&e) {}
  ~BackendKernel() override {
    if (engine) (void)datapath::leave(*engine, ep);
  }
  bpf::SpliceEngine* engine;
  datapath::SpliceEndpoint ep;
  datapath::SpliceContinuation resume;
};

class KernelPath final : public LeasePath {
 public:
  explicit KernelPath(Worker& w) : w_(w) {}

  void start() override { arm_events(); }
  void on_events() override;
  void on_tick() override;
  void lease_started(Client* c, pool::Backend* b) override;
  void before_backend_send(Client* c, pool::Backend* b) override;
  bool holds(const Client* c) const override;
  bool settle(Client* c) override;
  void take_back_all() override;
  void client_read(Client* c, uint32_t n) override;
  void client_written(Client* c, uint32_t n) override;
  bool recv_preempted(const Client* c, int res) const override;
  bool client_writable(Client* c) override;
  void client_closing(Client* c) override;
  void client_freed(Client* c) override;
  bool may_move(const Client* c) const override;
  void backend_read(pool::Backend* b, int res) override;
  uint32_t resume_backend(pool::Backend* b, Client* c, int32_t bid, const uint8_t* data,
                          uint32_t len, bool* ready) override;
  bool reply_cut(const pool::Backend* b) const override;

 private:
  static BackendKernel* kernel_of(pool::Backend* b) {
    return static_cast<BackendKernel*>(b->path.get());  // only this path sets it
  }
  bool kernel_path_for(const Client* c) const;  // data_path (tenant's or global) + auto rules
  void arm_events();
  void consume_events();
  // The lease is the worker's again (event or take-back): adopt the kernel's counts, resume.
  void leave_kernel(Client* c, const datapath::LeaseResult& r);
  // The client is closing: take the lease back without acting on the client; the backend is
  // then released or discarded as for any lease (detach_backend_on_close).
  void drop_lease(Client* c);
  // Common part of both: adopt the kernel's counts; false if the lease could not be released.
  bool adopt_lease(Client* c, const datapath::LeaseResult& r);
  bool fence_open(Client* c);  // the kernel's bytes to the client have left: we may write

  Worker& w_;
  bool poll_armed_ = false;
  std::unordered_map<uint64_t, std::pair<uint32_t, uint32_t>> spliced_;  // cookie -> slot, gen
  std::vector<std::pair<uint32_t, uint32_t>> fenced_;  // clients waiting for a fence
};

}  // namespace helios::proxy
