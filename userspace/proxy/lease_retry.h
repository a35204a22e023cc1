// A transaction whose backend died before answering anything (terminated while idle in the
// pool, or killed while running the transaction's first statement) never ran there: the proxy
// sends it to another backend instead of passing the error on (proxy/worker_retry.cpp).
// Kept from lease start: the client's messages as queued then (before the backend-specific
// parameter sync and statement preparation went in front) and what those injections change.
// Only while nothing came back from the backend, the client sent nothing more, and the
// replies are read by the worker (not spliced into the kernel).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "session/client_session.h"

namespace helios::proxy {

// The lease's first reply, as far as the retry is concerned.
enum class FirstReply : uint8_t {
  kAnswer,    // the backend is answering: no retry from here on
  kShutdown,  // a FATAL 57P0x before any reply reporting work: nothing ran to completion
  kPartial,   // not known yet: held until more arrives
  // A replica refused the batch as a write (25006) before any reply reporting work: it may run
  // on the primary instead (read/write split, worker_retry.cpp retry_on_primary).
  kReadOnly,
};
// The longest first ErrorResponse held whole before deciding (PostgreSQL's are ~100 bytes).
constexpr size_t kFirstReplyMaxBytes = 4096;

// Larger first batches are not kept: their backend's death reaches the client as before.
constexpr size_t kLeaseRetryMaxBytes = 64 * 1024;
// Backends tried per transaction before the error goes to the client (PostgreSQL going down
// kills every new backend too).
constexpr uint8_t kLeaseRetryMaxAttempts = 3;

struct LeaseRetry {
  bool armed = false;
  bool again = false;     // the next lease start is a retry of the same transaction
  bool deferred = false;  // the backend ended while a send to it was in flight: retry at its end
  uint8_t attempts = 0;   // retries of the current transaction
  uint32_t tracker_size = 0;  // tracker entries before the lease's injections
  bool clear_backend_statements = false;
  std::string bytes;  // the client's messages queued at lease start (capacity kept)
  std::vector<session::ClientSession::Ref> pending;  // ClientSession::pending at lease start
  // The first replies, held until they show whether the server did anything: an ErrorResponse
  // until it is whole, and (when the batch ends with a Sync) the replies that report no work
  // (ParseComplete, BindComplete, ...) of the injected or the client's messages before it.
  std::string first_reply;
  bool synced = false;  // the queued batch ended with a Sync or a Query

  void disarm() {
    armed = false;
    deferred = false;
    pending.clear();  // holds statements: they must not outlive their clients
    first_reply.clear();
  }
};

}  // namespace helios::proxy
