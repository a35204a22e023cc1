// The user-space data path: moving a lease's bytes between client and backend. Messages are
// framed in both directions but forwarded as ranges of the receive buffers they arrived in
// (zero copy); only decisions read the few bytes of a message's prefix.
#include <sys/socket.h>

#include "common/log.h"
#include "pg/protocol.h"
#include "pg/reader.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "server/worker.h"

namespace helios::server {
namespace {

// Skips whitespace and SQL comments; returns the rest.
std::string_view skip_blank(std::string_view s) {
  for (;;) {
    while (!s.empty() &&
           (s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r' || s[0] == '('))
      s.remove_prefix(1);
    if (s.starts_with("--")) {
      auto nl = s.find('\n');
      s = nl == std::string_view::npos ? std::string_view{} : s.substr(nl + 1);
    } else if (s.starts_with("/*")) {
      auto end = s.find("*/");
      s = end == std::string_view::npos ? std::string_view{} : s.substr(end + 2);
    } else {
      return s;
    }
  }
}

bool keyword(std::string_view s, std::string_view kw) {
  if (s.size() < kw.size()) return false;
  for (size_t i = 0; i < kw.size(); ++i) {
    char ch = s[i];
    if (ch >= 'a' && ch <= 'z') ch = char(ch - 'a' + 'A');
    if (ch != kw[i]) return false;
  }
  if (s.size() == kw.size()) return true;
  char next = s[kw.size()];
  return !((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') ||
           (next >= '0' && next <= '9') || next == '_');
}

// True if the SQL text (a prefix of it is enough) opens a transaction block.
bool starts_transaction(std::string_view sql) {
  sql = skip_blank(sql);
  return keyword(sql, "BEGIN") || keyword(sql, "START");
}

}  // namespace

// Client -> backend.
struct ClientHandler {
  Worker& w;
  Client* c;
  uint16_t bid;
  const uint8_t* data;
  bool& forward;  // per connection: a message body continues across receive buffers
  const char* violation = nullptr;
  std::string refusal;   // statement mode: why a message was refused
  uint16_t queries = 0;  // statements (Query, Execute, FunctionCall) in this input

  uint32_t prefix_wanted(char type, uint32_t) {
    return type == pg::fe::kQuery || type == pg::fe::kParse ? 128 : 0;
  }

  void on_message(const pg::FramedMessage& m) {
    forward = true;
    if (c->skip_to_sync) {  // after a refused extended-protocol message: discard until Sync
      forward = false;
      if (m.type == pg::fe::kSync) {
        c->skip_to_sync = false;
        std::string out;
        pg::write_ready_for_query(out, 'I');
        w.queue_to_client(c, out);
      }
      return;
    }
    switch (m.type) {
      case pg::fe::kTerminate:
        c->terminate = true;
        forward = false;
        return;
      case pg::fe::kQuery:
      case pg::fe::kParse:
        if (c->mode == control::PoolMode::kStatement && refuse_transaction(m)) return;
        if (m.type == pg::fe::kQuery) {
          ++c->outstanding;
          ++queries;
          c->unsynced = false;
        } else {
          c->unsynced = true;
        }
        break;
      case pg::fe::kFunctionCall:
        ++queries;
        [[fallthrough]];
      case pg::fe::kSync:
        ++c->outstanding;
        c->unsynced = false;
        break;
      case pg::fe::kExecute:
        ++queries;
        c->unsynced = true;
        break;
      case pg::fe::kBind:
      case pg::fe::kDescribe:
      case pg::fe::kClose:
        c->unsynced = true;
        break;
      default:
        break;
    }
    if (m.in_place)
      c->to_backend.push_borrowed(*w.chunks_, bid, data + m.offset, m.prefix_len);
    else
      c->to_backend.push_owned(
          *w.chunks_, std::string_view(reinterpret_cast<const char*>(m.prefix), m.prefix_len));
  }

  // Statement mode: a statement that opens a transaction block is answered by the proxy.
  bool refuse_transaction(const pg::FramedMessage& m) {
    std::string_view body(reinterpret_cast<const char*>(m.body()), m.captured());
    std::string_view sql = body;
    if (m.type == pg::fe::kParse) {  // statement name, then the query
      auto nul = body.find('\0');
      if (nul == std::string_view::npos) return false;
      sql = body.substr(nul + 1);
    }
    if (!starts_transaction(sql)) return false;
    forward = false;
    static constexpr std::string_view kMsg =
        "transaction blocks are not allowed in statement pooling mode";
    bool quiet =
        c->backend == nullptr && c->to_backend.empty() && c->outstanding == 0 && !c->unsynced;
    if (!quiet) {  // answering locally would reorder replies: give up on this client
      refusal = kMsg;
      return true;
    }
    std::string out;
    pg::write_error_response(out, "ERROR", pg::sqlstate::kFeatureNotSupported, kMsg, {},
                             "Use transaction or session pooling for this client, or run the "
                             "statements without BEGIN.");
    if (m.type == pg::fe::kQuery)
      pg::write_ready_for_query(out, 'I');
    else
      c->skip_to_sync = true;
    w.queue_to_client(c, out);
    return true;
  }

  void on_body(uint32_t off, uint32_t n) {
    if (forward) c->to_backend.push_borrowed(*w.chunks_, bid, data + off, n);
  }
  void on_message_end() {}
  void on_error(const char* what) { violation = what; }
};

void Worker::on_client_data(Client* c, uint16_t bid, const uint8_t* data, uint32_t len) {
  ClientHandler h{*this, c, bid, data, c->forward_body};
  c->framer.feed(data, len, h);
  if (h.violation) {
    send_error(c, true, pg::sqlstate::kProtocolViolation,
               std::string("invalid message from client: ") + h.violation);
    return;
  }
  if (!h.refusal.empty()) {
    send_error(c, true, pg::sqlstate::kFeatureNotSupported, h.refusal);
    return;
  }
  if (c->terminate) {
    close_client(c);
    return;
  }
  if (h.queries) {
    // QPS quota: statements wait for tokens before they reach a backend.
    c->pending_queries = uint16_t(c->pending_queries + h.queries);
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
      if (c->to_backend.bytes() > kPauseBytes) pause_client_input(c);
      break;
    default:  // kQueued / kWelcome: bytes wait in to_backend until the lease starts
      if (c->to_backend.bytes() > kPauseBytes) pause_client_input(c);
      break;
  }
}

void Worker::flush_backend(Client* c) {
  pool::Backend* b = c->backend;
  if (!b || c->throttled || c->to_backend.in_flight() || c->to_backend.empty()) return;
  if (!c->txn_started) c->txn_started = now_;
  if (!c->query_started) c->query_started = now_;
  submit_send(c->to_backend, b->fd.get(), pack(Op::kBackendSend, c->slot, c->gen));
  ++c->inflight;
  ++b->inflight;
  ++b->sends_inflight;
  c->sending_to = b;
}

void Worker::on_backend_send(Client* c, int res) {
  --c->inflight;
  pool::Backend* b = c->sending_to;
  c->sending_to = nullptr;
  --b->inflight;
  --b->sends_inflight;
  complete_send(c->to_backend, res);
  if (res < 0) {
    b->broken = true;
    c->to_backend.clear(*chunks_);
    if (c->backend == b) {
      send_error(c, true, pg::sqlstate::kConnectionFailure,
                 "lost the connection to the database server");
    }
  } else if (c->backend == b) {
    flush_backend(c);
    if (c->recv_paused && c->to_backend.bytes() < kResumeBytes) resume_client_input(c);
  }
  if (b->finish != pool::Backend::Finish::kNone) finish_backend(b);
  maybe_free(c);
}

void Worker::pause_client_input(Client* c) {
  if (c->recv_paused) return;
  c->recv_paused = true;
  if (c->recv_armed) {
    io_uring_sqe* sqe = ring_->sqe();
    io_uring_prep_cancel64(sqe, pack(Op::kClientRecv, c->slot, c->gen), 0);
    sqe->user_data = pack(Op::kCancelOp, 0, 0);
  }
}

void Worker::resume_client_input(Client* c) {
  c->recv_paused = false;
  arm_client_recv(c);
}

// Backend -> client.
struct BackendHandler {
  Worker& w;
  pool::Backend* b;
  Client* c;  // nullptr while the backend is being cleaned up after its client left
  uint16_t bid;
  const uint8_t* data;
  bool& forward;  // per backend: a message body continues across receive buffers
  bool lease_may_end = false;

  uint32_t prefix_wanted(char type, uint32_t length) {
    switch (type) {
      case pg::be::kReadyForQuery:
        return 1;
      case pg::be::kParameterStatus:
        return length - 4;  // small; we record it
      case pg::be::kErrorResponse:
        return 512;  // severity, SQLSTATE, message
      default:
        return 0;
    }
  }

  void on_message(const pg::FramedMessage& m) {
    bool internal = b->swallow_rfq > 0;
    std::string_view body(reinterpret_cast<const char*>(m.body()), m.captured());
    switch (m.type) {
      case pg::be::kReadyForQuery:
        if (m.captured() >= 1) b->tx_status = char(m.body()[0]);
        if (internal) {
          --b->swallow_rfq;
        } else if (c) {
          if (c->outstanding > 0) --c->outstanding;
          lease_may_end = true;
          if (c->tenant && c->query_started) {
            c->tenant->record_query(w.now_, w.now_ - c->query_started);
            c->query_started = c->outstanding > 0 ? w.now_ : 0;
          }
          if (b->tx_status == 'I' && c->outstanding == 0) {
            c->txn_started = 0;
            c->duration_cancelled = false;
          }
        }
        break;
      case pg::be::kParameterStatus:
        if (m.complete()) {
          if (auto ps = pg::parse_parameter_status(body)) {
            std::string name(ps->name);
            bool found = false;
            for (auto& [k, v] : b->params)
              if (k == name) v = std::string(ps->value), found = true;
            if (!found) b->params.emplace_back(name, std::string(ps->value));
            // The client changed a reported parameter (SET): carry it to its next backend.
            if (c && !internal && is_tracked_parameter(lower(name))) {
              std::string value(ps->value);
              c->params = w.ctx_.params.with(c->params, lower(name), &value);
              // Session mode follows a tenant named by SET application_name (applied after
              // this input is relayed).
              if (c->mode == control::PoolMode::kSession && lower(name) == w.tenant_parameter_)
                w.tenant_changes_.emplace_back(c, value);
            }
          }
        }
        break;
      case pg::be::kErrorResponse:
        if (auto f = pg::parse_error_response(body); f) {
          if (f->effective_severity() == "FATAL" || f->effective_severity() == "PANIC")
            b->broken = true;
          if (internal)
            log::warn("backend pid {}: proxy-internal query failed: {}: {}", b->process_id,
                      f->sqlstate, f->message);
          // A statement we cancelled for max_transaction_duration: say why, not "user request".
          if (c && !internal && c->duration_cancelled && m.complete() &&
              f->sqlstate == pg::sqlstate::kQueryCanceled) {
            std::string out;
            pg::write_error_response(
                out, "ERROR", pg::sqlstate::kQueryCanceled,
                "canceling statement: the transaction exceeded max_transaction_duration of " +
                    std::to_string(c->tenant->max_transaction_duration() / kNanosPerMilli) +
                    " ms for tenant \"" + std::string(c->tenant->name()) + "\"");
            c->to_client.push_owned(*w.chunks_, out);
            forward = false;
            return;
          }
        }
        break;
      default:
        break;
    }
    forward = c && !internal;
    if (!forward) return;
    if (m.in_place)
      c->to_client.push_borrowed(*w.chunks_, bid, data + m.offset, m.prefix_len);
    else
      c->to_client.push_owned(
          *w.chunks_, std::string_view(reinterpret_cast<const char*>(m.prefix), m.prefix_len));
  }
  void on_body(uint32_t off, uint32_t n) {
    if (forward) c->to_client.push_borrowed(*w.chunks_, bid, data + off, n);
  }
  void on_message_end() {}
  void on_error(const char* what) {
    log::error("backend pid {}: unframeable data from the server: {}", b->process_id, what);
    b->broken = true;
  }
};

void Worker::arm_backend_recv(pool::Backend* b) {
  if (b->recv_armed || b->recv_paused) return;
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_recv(sqe, b->fd.get(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = bufs_->group_id();
  sqe->user_data = pack(Op::kBackendRecv, b->index, b->gen);
  b->recv_armed = true;
  ++b->inflight;
}

void Worker::on_backend_recv(pool::Backend* b, int res, uint32_t flags) {
  b->recv_armed = false;
  --b->inflight;
  Client* c = nullptr;
  if (b->state == pool::BackendState::kLeased && b->finish == pool::Backend::Finish::kNone) {
    c = client_at(b->client_slot, b->client_gen);
    if (c && c->backend != b) c = nullptr;
  }
  if (res > 0) {
    uint16_t bid = uint16_t(flags >> IORING_CQE_BUFFER_SHIFT);
    bufs_->on_delivered(bid);
    stats_.bytes_from_backends.fetch_add(uint64_t(res), std::memory_order_relaxed);
    if (!c) b->forward_body = false;
    BackendHandler h{*this, b, c, bid, bufs_->data(bid), b->forward_body};
    b->framer.feed(bufs_->data(bid), uint32_t(res), h);
    bufs_->unref(bid);
    if (c) {
      flush_client(c);
      if (!tenant_changes_.empty()) {
        auto changes = std::move(tenant_changes_);
        tenant_changes_.clear();
        for (auto& [cl, name] : changes) follow_tenant(cl, name);
        if (c->state == ClientState::kClosing) return;
      }
      if (c->to_client.bytes() > kPauseBytes) b->recv_paused = true;
      if (b->broken) {
        // The server said FATAL (e.g. terminated by an administrator): the client has the
        // message; the session is over.
        c->backend = nullptr;
        ctx_.on_lease_end(c);
        c->fatal_sent = true;
        close_client(c);
        b->finish = pool::Backend::Finish::kDiscard;
        finish_backend(b);
        return;
      }
      if (h.lease_may_end) maybe_end_lease(c);
      if (c->backend == b) arm_backend_recv(b);
      return;
    }
    on_backend_recv_unattached(b, /*had_data=*/true);
    return;
  }
  if (res == -ENOBUFS) {  // out of receive buffers for a moment: try again next round
    arm_backend_recv(b);
    return;
  }
  if (res == -ECANCELED && b->cancel_issued) {
    finish_backend(b);
    return;
  }
  // EOF or error: the server closed the connection.
  b->broken = true;
  if (c) {
    c->backend = nullptr;
    ctx_.on_lease_end(c);
    if (!c->fatal_sent)
      send_error(c, true, pg::sqlstate::kConnectionFailure,
                 "server closed the connection unexpectedly");
    else
      close_client(c);
  }
  b->finish = pool::Backend::Finish::kDiscard;
  finish_backend(b);
}

// Data (or its absence) on a backend no client is attached to: cleanup replies, or a backend
// being released that unexpectedly spoke.
void Worker::on_backend_recv_unattached(pool::Backend* b, bool had_data) {
  using F = pool::Backend::Finish;
  if (b->finish == F::kCleanup) {  // cleanup queries not sent yet: nothing to expect
    arm_backend_recv(b);
    return;
  }
  if (b->state == pool::BackendState::kCleanup && b->finish == F::kNone) {
    if (b->broken) {
      b->finish = F::kDiscard;
    } else if (b->swallow_rfq > 0) {
      arm_backend_recv(b);
      return;
    } else {
      b->finish = b->tx_status == 'I' ? F::kRelease : F::kDiscard;
    }
  }
  bool cleaning = b->state == pool::BackendState::kCleanup;
  if (b->finish == F::kNone || (had_data && !cleaning && b->finish == F::kRelease)) {
    b->broken = true;  // spoke while nobody asked: don't trust it with another client
    b->finish = F::kDiscard;
  }
  finish_backend(b);
}

}  // namespace helios::server
