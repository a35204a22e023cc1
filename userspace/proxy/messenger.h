// Messenger for threads that are not workers (connector threads, the control thread): sends
// msg_ring completions into workers' rings from a small ring of its own.
#pragma once

#include <memory>

#include "io/ring.h"
#include "pool/pool.h"

namespace helios::proxy {

struct SharedContext;

class ThreadMessenger final : public pool::Messenger {
 public:
  explicit ThreadMessenger(SharedContext& ctx);
  void grant(const pool::Waiter& w, pool::Backend* b) override;
  void fail(const pool::Waiter& w, pool::WaitFailure why) override;
  void mail(uint16_t worker) override;

 private:
  void send(uint16_t worker, uint32_t res, uint64_t user_data);
  SharedContext& ctx_;
  std::unique_ptr<io::Ring> ring_;
};

}  // namespace helios::proxy
