// The relay's decisions on a client's messages, without I/O: framed client messages go in, and
// actions come out to a DecoderSink (forward these bytes, send these instead, expect this reply,
// answer the client locally, apply these session effects) plus a result that says whether to
// refuse the client with a SQLSTATE, close it, or count statements against its QPS quota.
//
// The worker implements the sink over a client's queues (worker_client_sink.cpp); unit tests
// implement it with a recorder and drive the decoder with byte sequences
// (tests/unit/test_client_decoder.cpp). What a decision reads of the connection (is a backend
// held, is anything owed) it asks the sink, so the same bytes give the same actions in both.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "pg/framer.h"
#include "session/client_session.h"
#include "session/prepared_registry.h"
#include "session/response_tracker.h"
#include "session/sql_inspect.h"

namespace helios::pool {
class StatementCache;
}

namespace helios::proxy {

// Per-connection state of the client -> backend direction that outlives one input.
struct ClientWire {
  bool unsynced = false;      // forwarded extended-protocol messages not yet followed by Sync
  bool skip_to_sync = false;  // a refused extended-protocol message: discard until Sync
  bool forward_body = false;  // the body of the message being read goes to the backend
};

// SQL naming the client's protocol-prepared statements (EXECUTE, DEALLOCATE), mapped to the
// server's names (worker_statement_sql.cpp).
enum class StatementSql : uint8_t {
  kNone,       // names none of them: relay as is
  kRewritten,  // `rewritten` holds the text with the server's names; the statements will be there
  kAnswered,   // only DEALLOCATEs while no backend is held: the proxy answered the Query
  kRefused,    // an EXECUTE whose statement pins, refused by pin_policy: `refusal` says why
};

class DecoderSink {
 public:
  virtual ~DecoderSink() = default;

  // ---- what decisions read
  virtual bool leased() const = 0;  // a backend is held
  // No backend held, nothing queued for one, no reply owed: the proxy may answer a message
  // itself without reordering the client's replies.
  virtual bool nothing_in_flight() const = 0;
  // No backend held, nothing queued for one, and every reply owed is one the proxy makes.
  virtual bool only_synthetic_owed() const = 0;
  // The held backend's prepared statements (nullptr when none is held).
  virtual pool::StatementCache* backend_statements() = 0;

  // ---- bytes for the backend, in order
  // Bytes of the client's own input; `in_input` says they lie in the buffer passed to feed().
  virtual void forward(const uint8_t* p, uint32_t n, bool in_input) = 0;
  virtual void send(std::string_view bytes) = 0;  // bytes the proxy wrote in their place

  // ---- replies
  virtual void expect(session::Expect e, session::Reply r, uint32_t stmt) = 0;
  virtual void awaits_ready() = 0;                  // a Query/FunctionCall/Sync went out
  virtual void answer(std::string_view bytes) = 0;  // the proxy's own reply, queued now

  // ---- session
  virtual session::ClientSession& session() = 0;     // created on first use
  virtual session::ClientSession* session_if() = 0;  // nullptr if none yet
  virtual bool apply_effects(const std::vector<session::SessionEffect>& effects,
                             std::string* refusal) = 0;
  virtual StatementSql map_statement_sql(std::string_view sql, bool complete, bool simple_query,
                                         bool quiet, std::string* rewritten,
                                         std::string* refusal) = 0;
  // The statement's text kept process-wide; nullptr past prepared_statement_memory_mb.
  virtual session::PreparedPtr intern(std::string_view tail) = 0;
  // Bytes that make the held backend hold `stmt` before the next message (empty if it does).
  virtual std::string prepare_on_backend(const session::PreparedPtr& stmt) = 0;
};

// What one input asks of the caller once it is decoded.
struct DecodeResult {
  const char* violation = nullptr;  // unframeable: close with 08P01
  std::string refusal;              // close with 0A000 and this message
  uint16_t statements = 0;          // Query, Execute, FunctionCall: for the QPS quota
  bool terminate = false;           // the client said goodbye
};

class ClientDecoder {
 public:
  // `mode` is the lease's pool mode; `track_statements` renames named statements.
  ClientDecoder(const config::ConnectionPoolConfig& cfg, config::PoolMode mode,
                bool track_statements, ClientWire& wire, DecoderSink& sink)
      : cfg_(cfg),
        mode_(mode),
        inspect_(mode != config::PoolMode::kSession),
        track_statements_(track_statements),
        wire_(wire),
        sink_(sink) {}

  // Decodes `len` bytes of client input; a message cut at the end continues at the next call.
  DecodeResult feed(pg::StreamFramer& framer, const uint8_t* data, uint32_t len);

  // ---- StreamFramer's handler interface
  uint32_t prefix_wanted(char type, uint32_t length) const;
  void on_message(const pg::FramedMessage& m);
  void on_body(uint32_t off, uint32_t n);
  void on_message_end() {}
  void on_error(const char* what) { result_.violation = what; }

 private:
  void forward_prefix(const pg::FramedMessage& m);
  void expect(session::Expect e, session::Reply r = session::Reply::kForward, uint32_t stmt = 0) {
    sink_.expect(e, r, stmt);
  }
  void need_statement(const session::PreparedPtr& stmt);
  bool inspected(std::string_view sql, const pg::FramedMessage& m);
  bool effects(const std::vector<session::SessionEffect>& fx, const pg::FramedMessage& m);
  void answer_error(const pg::FramedMessage& m, std::string_view sqlstate, std::string_view msg,
                    std::string_view hint);
  bool map_statement_names(const pg::FramedMessage& m, std::string_view sql, std::string* mapped);
  void send_query(const pg::FramedMessage& m, std::string_view text);
  bool on_parse(const pg::FramedMessage& m);
  bool on_named_parse(const pg::FramedMessage& m, std::string_view name, std::string_view tail);
  bool on_duplicate_parse(std::string_view name, const session::PreparedPtr& existing,
                          std::string_view tail);
  bool on_unnamed_parse(const pg::FramedMessage& m, std::string_view tail);
  bool on_bind(const pg::FramedMessage& m);
  session::PreparedPtr named_statement(const pg::FramedMessage& m);
  bool on_describe(const pg::FramedMessage& m);
  bool on_close(const pg::FramedMessage& m);
  void refuse_transaction(const pg::FramedMessage& m);

  const config::ConnectionPoolConfig& cfg_;
  config::PoolMode mode_;
  bool inspect_;  // transaction/statement pooling: session state matters
  bool track_statements_;
  ClientWire& wire_;
  DecoderSink& sink_;
  const uint8_t* data_ = nullptr;  // the input being fed
  DecodeResult result_;
};

}  // namespace helios::proxy
