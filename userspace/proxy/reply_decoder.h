// The relay's decisions on a backend's replies, without I/O: framed backend messages go in,
// matched to the requests they answer (session::ResponseTracker); actions come out to a
// ReplySink (forward these bytes to the client, send these instead, replies the proxy owes
// now, a ReadyForQuery of the client's) and a result that says whether the lease may end, the
// backend died between transactions, or the reply stream no longer matches the requests.
//
// The worker implements the sink (worker_relay_backend.cpp); unit tests implement it with a
// recorder (tests/unit/proxy/reply_decoder_test.cpp). Twin of ClientDecoder (client_decoder.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"
#include "pg/framer.h"
#include "pg/reader.h"
#include "pool/backend.h"
#include "session/client_session.h"
#include "session/response_tracker.h"

namespace helios::proxy {

class ReplySink {
 public:
  virtual ~ReplySink() = default;

  // ---- the lease's client (none while a backend is cleaned up after its client left)
  virtual bool attached() const = 0;
  virtual session::ResponseTracker& tracker() = 0;
  virtual session::ClientSession* session_if() = 0;
  // The client is between transactions on this backend: nothing owed either way, nothing
  // pinned, no probe or restore in progress.
  virtual bool between_transactions() const = 0;
  // A FATAL from the server would not cost the client its connection: it gets 08006 in place
  // of the replies owed (transaction mode, unpinned; worker_backend_loss.cpp).
  virtual bool survives_loss() const = 0;

  // ---- bytes for the client, in order
  virtual void forward(const uint8_t* p, uint32_t n, bool in_input) = 0;
  virtual void send(std::string_view bytes) = 0;  // bytes the proxy wrote in their place
  virtual void emit_synthetic() = 0;              // replies the proxy owes before the next one

  // ---- session
  // A ParameterStatus the client's own statement caused (SET of a reported parameter).
  virtual void client_parameter(std::string_view name, std::string_view value) = 0;
  // A ParameterStatus while a reset's are held (worker_restore.cpp): true = kept, not sent.
  virtual bool hold_parameter_status(std::string_view body) = 0;
  virtual void probe_message(char type, std::string_view body, bool complete) = 0;
  virtual void restore_done() = 0;
  // A ReadyForQuery the client is owed arrived: true if it must wait (a restore or probe first).
  virtual bool client_ready(char tx_status) = 0;
  // Set when the proxy cancelled the running statement for max_transaction_duration: the
  // error the client gets in place of the server's 57014.
  virtual std::string duration_cancel_message() = 0;
};

struct ReplyResult {
  bool lease_may_end = false;  // a ReadyForQuery of the lease came
  bool desync = false;         // a reply no request asked for: the session can't be trusted
  // The server ended the session after the lease's transaction was answered in full: the client
  // owes and is owed nothing, so it just loses this backend (not its connection).
  bool died_between = false;
  // The server said FATAL while the client was inside a transaction or owed replies, and the
  // sink said the client survives it: not forwarded; its message is here.
  bool lost = false;
  std::string lost_message;
};

class ReplyDecoder {
 public:
  ReplyDecoder(pool::Backend& b, session::TrackBlockPool& track_pool, ReplySink& sink)
      : b_(b), pool_(track_pool), sink_(sink) {}

  ReplyResult feed(const uint8_t* data, uint32_t len);
  void set_lease_may_end() { result_.lease_may_end = true; }

  // ---- StreamFramer's handler interface
  uint32_t prefix_wanted(char type, uint32_t length);
  void on_message(const pg::FramedMessage& m);
  void on_body(uint32_t off, uint32_t n);
  void on_message_end();
  void on_error(const char* what);

 private:
  void forward_prefix(const pg::FramedMessage& m);
  void on_cleanup_message(const pg::FramedMessage& m, std::string_view body);
  void on_async_message(const pg::FramedMessage& m, std::string_view body);
  void on_parameter_status(std::string_view body, bool internal);
  void on_error_response(const pg::ErrorFields& f, const session::ResponseTracker::Outcome& o,
                         const pg::FramedMessage& m);
  bool probe_reply();
  bool injected_sync_next();

  pool::Backend& b_;
  session::TrackBlockPool& pool_;
  ReplySink& sink_;
  const uint8_t* data_ = nullptr;
  bool injected_failed_ = false;  // the error being handled answers a message the proxy injected
  ReplyResult result_;
};

}  // namespace helios::proxy
