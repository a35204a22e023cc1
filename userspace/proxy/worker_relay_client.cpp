// The user-space data path, client -> backend (see also worker_relay_backend.cpp for replies
// and worker_relay_send.cpp for the sends). The decisions on each message are the
// ClientDecoder's (client_decoder.h, I/O-free); this file is its sink over a client's queues:
// the bytes it forwards go to the backend as ranges of the receive buffers they arrived in (zero
// copy), and what it asks of the session goes to the worker.
#include <sys/socket.h>

#include "common/log.h"
#include "pg/protocol.h"
#include "pg/sqlstate.h"
#include "proxy/client_decoder.h"
#include "proxy/worker.h"

namespace helios::proxy {

class WorkerClientSink final : public DecoderSink {
 public:
  WorkerClientSink(Worker& w, Client* c, int32_t bid) : w_(w), c_(c), bid_(bid) {}

  bool leased() const override { return c_->backend != nullptr; }
  bool nothing_in_flight() const override {
    return !leased() && c_->to_backend.empty() && c_->tracker.empty();
  }
  bool only_synthetic_owed() const override {
    return !leased() && c_->to_backend.empty() && !c_->tracker.empty() &&
           c_->tracker.only_synthetic();
  }
  pool::StatementCache* backend_statements() override {
    return c_->backend ? &c_->backend->statements : nullptr;
  }

  void forward(const uint8_t* p, uint32_t n, bool in_input) override {
    // Bytes in a provided receive buffer are borrowed; TLS plaintext (kNoBuffer) and prefixes
    // the framer gathered across inputs are copied.
    if (in_input && bid_ != kNoBuffer)
      c_->to_backend.push_borrowed(*w_.chunks_, uint16_t(bid_), p, n);
    else
      c_->to_backend.push_owned(*w_.chunks_, std::string_view(reinterpret_cast<const char*>(p), n));
  }
  void send(std::string_view bytes) override { c_->to_backend.push_owned(*w_.chunks_, bytes); }

  void expect(session::Expect e, session::Reply r, uint32_t stmt) override {
    c_->tracker.push(w_.track_pool_, e, r, stmt);
  }
  void awaits_ready() override {
    ++c_->outstanding;
    ++c_->rfq_sent;
  }
  void answer(std::string_view bytes) override { w_.queue_to_client(c_, bytes); }

  session::ClientSession& session() override {
    if (!c_->session) c_->session = std::make_unique<session::ClientSession>();
    return *c_->session;
  }
  session::ClientSession* session_if() override { return c_->session.get(); }
  bool apply_effects(const std::vector<session::SessionEffect>& effects,
                     std::string* refusal) override {
    return w_.apply_effects(c_, effects, refusal);
  }
  StatementSql map_statement_sql(std::string_view sql, bool complete, bool simple_query, bool quiet,
                                 std::string* rewritten, std::string* refusal) override {
    return w_.map_statement_sql(c_, sql, complete, simple_query, quiet, rewritten, refusal);
  }
  session::PreparedPtr intern(std::string_view tail) override {
    auto stmt = w_.ctx_.prepared.intern(
        tail, uint64_t(w_.cfg_->connection_pool.prepared_statement_memory_mb) << 20);
    if (!stmt)
      log::debug(
          "worker {}: prepared_statement_memory_mb reached: a statement stays on its backend",
          w_.id_);
    return stmt;
  }
  std::string prepare_on_backend(const session::PreparedPtr& stmt) override {
    std::string out;
    w_.ensure_prepared(c_, c_->backend, stmt, out, /*front=*/false);
    return out;
  }

 private:
  Worker& w_;
  Client* c_;
  int32_t bid_;  // provided buffer holding the input, or kNoBuffer (TLS plaintext: copy it)
};

void Worker::on_client_data(Client* c, int32_t bid, const uint8_t* data, uint32_t len) {
  // Kernel data path: the worker relays this itself, so the replies come back to it first.
  if (!path_->settle(c)) return;
  if (stopping_ && c->state == ClientState::kIdle && c->ran_transaction) {
    // Draining: no new transactions from clients that already had theirs (a client saying
    // goodbye just goes).
    if (data[0] == pg::fe::kTerminate)
      c->fatal_sent = false, close_client(c);
    else
      send_error(c, true, pg::sqlstate::kAdminShutdown, "the proxy is shutting down");
    return;
  }
  c->last_activity = now_;
  if (c->backend) {  // these go to this backend only: no other may take the transaction now
    // Its server ended while a send was in flight: read that end again, the client gets it.
    if (c->retry.deferred) arm_backend_recv(c->backend);
    c->retry.disarm();
  }
  WorkerClientSink sink{*this, c, bid};
  ClientDecoder decoder(cfg_->connection_pool, c->mode, c->track_statements, c->wire, sink);
  DecodeResult h = decoder.feed(c->framer, data, len);
  if (h.violation) {
    std::string why = std::string("invalid message from client: ") + h.violation;
    ctx_.metrics.count_protocol_violation();
    security_log(c, "closed for a protocol violation: " + why);
    send_error(c, true, pg::sqlstate::kProtocolViolation, why);
    return;
  }
  if (!h.refusal.empty()) {
    send_error(c, true, pg::sqlstate::kFeatureNotSupported, h.refusal);
    return;
  }
  if (h.terminate) {
    close_client(c);
    return;
  }
  emit_synthetic(c);
  flush_client(c);
  if (h.statements) {
    // QPS quota: statements wait for tokens before they reach a backend.
    c->pending_queries = uint16_t(c->pending_queries + h.statements);
    if (!admit_queries(c, now_) && !c->throttled) {
      c->throttled = true;
      c->throttle_since = now_;
      if (c->state == ClientState::kIdle) set_state(c, ClientState::kThrottled, now_);
    }
  }
  switch (c->state) {
    case ClientState::kIdle:
      if (!c->to_backend.empty()) need_backend(c);
      break;
    case ClientState::kThrottled:
      break;
    case ClientState::kActive:
      flush_backend(c);
      // A lease can end on the client side too: a Close answered by the proxy, say.
      maybe_end_lease(c);
      break;
    default:  // kQueued / kWelcome: bytes wait in to_backend until the lease starts
      break;
  }
  update_client_input(c);
}

}  // namespace helios::proxy
