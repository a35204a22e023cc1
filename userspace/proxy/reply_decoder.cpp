// Backend -> client decisions (reply_decoder.h): replies are matched to their requests, those
// the proxy owes or must hide are made or dropped in place, and ReadyForQuery moves the lease on.
#include "proxy/reply_decoder.h"

#include "common/log.h"
#include "pg/protocol.h"
#include "pg/sqlstate.h"
#include "pg/writer.h"
#include "session/params.h"

namespace helios::proxy {

ReplyResult ReplyDecoder::feed(const uint8_t* data, uint32_t len) {
  data_ = data;
  b_.framer.feed(data, len, *this);
  return result_;
}

bool ReplyDecoder::probe_reply() {
  const session::TrackEntry* head = sink_.attached() ? sink_.tracker().head() : nullptr;
  return head && head->reply == session::Reply::kProbe;
}

bool ReplyDecoder::injected_sync_next() {
  const session::TrackEntry* h = sink_.tracker().head();
  return h && h->expect == session::Expect::kSync && h->reply == session::Reply::kSwallow;
}

uint32_t ReplyDecoder::prefix_wanted(char type, uint32_t length) {
  switch (type) {
    case pg::be::kReadyForQuery:
      return 1;
    case pg::be::kParameterStatus:
      return length - 4;  // small; we record it
    case pg::be::kErrorResponse:
      return 512;                     // severity, SQLSTATE, message
    case pg::be::kCommandComplete: {  // "ROLLBACK" drops staged session changes
      session::ClientSession* s = sink_.attached() ? sink_.session_if() : nullptr;
      return s && s->has_staged() ? std::min<uint32_t>(length - 4, 16) : 0;
    }
    case pg::be::kDataRow:  // a row of the session-state probe's answer is read whole
      return probe_reply() ? length - 4 : 0;
    default:
      return 0;
  }
}

void ReplyDecoder::forward_prefix(const pg::FramedMessage& m) {
  if (m.in_place)
    sink_.forward(data_ + m.offset, m.prefix_len, true);
  else
    sink_.forward(m.prefix, m.prefix_len, false);
}

void ReplyDecoder::on_body(uint32_t off, uint32_t n) {
  if (b_.forward_body && sink_.attached()) sink_.forward(data_ + off, n, true);
}

void ReplyDecoder::on_message_end() {
  if (sink_.attached()) sink_.emit_synthetic();  // replies the proxy owes right after this one
}

void ReplyDecoder::on_error(const char* what) {
  log::error("backend pid {}: unframeable data from the server: {}", b_.process_id, what);
  b_.broken = true;
}

void ReplyDecoder::on_parameter_status(std::string_view body, bool internal) {
  auto ps = pg::parse_parameter_status(body);
  if (!ps) return;
  std::string name(ps->name);
  bool found = false;
  for (auto& [k, v] : b_.params)
    if (k == name) v = std::string(ps->value), found = true;
  if (!found) b_.params.emplace_back(name, std::string(ps->value));
  // The client changed a reported parameter (SET): carry it to its next backend.
  if (sink_.attached() && !internal) {
    std::string lower = session::lower(name);
    if (session::is_tracked_parameter(lower)) sink_.client_parameter(lower, ps->value);
  }
}

// Cleanup after the client left: the proxy's own queries; nothing reaches a client.
void ReplyDecoder::on_cleanup_message(const pg::FramedMessage& m, std::string_view body) {
  b_.forward_body = false;
  if (m.type == pg::be::kReadyForQuery) {
    if (m.captured() >= 1) b_.tx_status = char(m.body()[0]);
    if (b_.swallow_rfq) --b_.swallow_rfq;
  } else if (m.type == pg::be::kErrorResponse) {
    if (auto f = pg::parse_error_response(body); f) {
      if (f->is_fatal()) b_.broken = true;
      log::warn("backend pid {}: cleanup query failed: {}: {}", b_.process_id, f->sqlstate,
                f->message);
    }
  } else if (m.type == pg::be::kParameterStatus && m.complete()) {
    on_parameter_status(body, true);
  }
}

// Notices, notifications and parameter reports belong to no request.
void ReplyDecoder::on_async_message(const pg::FramedMessage& m, std::string_view body) {
  const session::TrackEntry* head = sink_.tracker().head();
  // A notification is for the client's session whatever statement runs when it comes. The
  // restore of the client's startup values is the client's too (worker_restore.cpp).
  session::ClientSession* s = sink_.session_if();
  bool restoring = s && s->restore_inflight;
  bool internal = head && m.type != pg::be::kNotificationResponse &&
                  ((head->reply == session::Reply::kSwallow && !restoring) ||
                   head->reply == session::Reply::kProbe);
  bool held = false;  // around a reset: the client gets the net changes (worker_restore.cpp)
  if (m.type == pg::be::kParameterStatus && m.complete()) {
    held = !internal && sink_.hold_parameter_status(body);
    on_parameter_status(body, internal);
  }
  b_.forward_body = !internal && !held;
  if (b_.forward_body) forward_prefix(m);
}

void ReplyDecoder::on_message(const pg::FramedMessage& m) {
  bool& forward = b_.forward_body;
  std::string_view body(reinterpret_cast<const char*>(m.body()), m.captured());
  if (!sink_.attached()) return on_cleanup_message(m, body);
  if (m.type == pg::be::kNoticeResponse || m.type == pg::be::kNotificationResponse ||
      m.type == pg::be::kParameterStatus)
    return on_async_message(m, body);
  session::ResponseTracker& tracker = sink_.tracker();
  // A FATAL the server sends on its own (terminated by an administrator, shutting down)
  // answers no request: the client gets it and the session ends with the connection.
  if (m.type == pg::be::kErrorResponse && tracker.empty()) {
    if (auto f = pg::parse_error_response(body); f && f->is_fatal()) {
      b_.broken = true;
      if (sink_.between_transactions()) {
        result_.died_between = true;
        forward = false;
        return;
      }
      if (sink_.survives_loss()) {  // idle in a transaction: it is told at its next statement
        result_.lost = true;
        result_.lost_message = f->message;
        forward = false;
        return;
      }
      forward = true;
      forward_prefix(m);
      return;
    }
  }
  // A FATAL in place of a reply: the session is over, but not the client's (transaction mode).
  if (m.type == pg::be::kErrorResponse && !probe_reply()) {
    if (auto f = pg::parse_error_response(body); f && f->is_fatal() && sink_.survives_loss()) {
      b_.broken = true;
      result_.lost = true;
      result_.lost_message = f->message;
      forward = false;
      return;
    }
  }
  sink_.emit_synthetic();  // replies the proxy owes before this one
  // A Parse the server skipped after an error never created its statement there.
  auto skipped = [](void* ctx, const session::TrackEntry& e) {
    auto* backend = static_cast<pool::Backend*>(ctx);
    if (e.expect == session::Expect::kParse && e.stmt &&
        !session::ResponseTracker::is_synthetic(e.reply))
      backend->statements.erase(e.stmt);
  };
  auto o = tracker.on_backend_message(pool_, m.type, skipped, &b_);
  // An injected extended-protocol message failed: the server now skips the client's messages
  // up to its Sync, so the client must see the error instead of a bare ReadyForQuery.
  // Injected messages the proxy ended with its own Sync (before a simple Query) need not.
  injected_failed_ = o.failed && !o.forward;
  if (o.failed && !o.forward && o.expect != session::Expect::kQuery && !injected_sync_next())
    o.forward = true;
  if (o.unexpected) {
    log::error("backend pid {}: reply '{}' does not match the pending request; closing the session",
               b_.process_id, m.type);
    result_.desync = true;
  }
  forward = o.forward;
  if (o.probe) {  // the proxy's own question: read here, never forwarded
    if (m.type == pg::be::kReadyForQuery && m.captured() >= 1) {
      b_.tx_status = char(m.body()[0]);
      result_.lease_may_end = true;  // the answer is in: the backend may go now
    }
    if (!result_.desync) sink_.probe_message(m.type, body, m.complete());
    return;
  }
  session::ClientSession* s = sink_.session_if();
  switch (m.type) {
    case pg::be::kReadyForQuery:
      if (m.captured() >= 1) b_.tx_status = char(m.body()[0]);
      if (!forward && s && s->restore_inflight) {
        sink_.restore_done();
        result_.lease_may_end = true;
      }
      if (forward) {
        result_.lease_may_end = true;
        // A reset puts the client's startup values back first, and the lease ends with a
        // session-state probe: this ReadyForQuery waits for them.
        if (sink_.client_ready(b_.tx_status)) forward = false;
      }
      break;
    case pg::be::kErrorResponse:
      if (o.forward && s) s->txn_failed = s->request_failed = true;
      if (auto f = pg::parse_error_response(body); f) on_error_response(*f, o, m);
      break;
    case pg::be::kCommandComplete:
      if (o.forward && s && body == std::string_view("ROLLBACK\0", 9)) s->txn_failed = true;
      break;
    default:
      break;
  }
  if (forward) forward_prefix(m);
}

void ReplyDecoder::on_error_response(const pg::ErrorFields& f,
                                     const session::ResponseTracker::Outcome& o,
                                     const pg::FramedMessage& m) {
  if (f.is_fatal()) b_.broken = true;
  session::ClientSession* s = sink_.session_if();
  if (o.stmt) {
    // The statement is not (or no longer usable) on this backend: a failed Parse never
    // created it, and "cached plan must not change result type" after a schema change means
    // the server copy is stale. Forget it; the next use re-prepares it.
    if (o.expect == session::Expect::kParse ||
        f.message.find("cached plan must not change result type") != std::string::npos)
      b_.statements.erase(o.stmt);
    // A Parse the client asked for failed (here, or deferred to this backend): its name must
    // not stay bound, or later Binds would report our name instead of the client's. Not when
    // the proxy's own Parse (re-preparing or deferred) met a transaction that had already
    // failed (25P02): on a direct connection the statement would still be prepared.
    if (o.expect == session::Expect::kParse && o.forward && s &&
        !(injected_failed_ && f.sqlstate == pg::sqlstate::kInFailedSqlTransaction))
      std::erase_if(s->statements, [&](const auto& kv) { return kv.second->id == o.stmt; });
  }
  if (!o.forward)
    log::warn("backend pid {}: proxy-internal statement failed: {}: {}", b_.process_id, f.sqlstate,
              f.message);
  // A statement we cancelled for max_transaction_duration: say why, not "user request".
  if (o.forward && m.complete() && f.sqlstate == pg::sqlstate::kQueryCanceled) {
    std::string why = sink_.duration_cancel_message();
    if (!why.empty()) {
      std::string out;
      pg::write_error_response(out, "ERROR", pg::sqlstate::kQueryCanceled, why);
      sink_.send(out);
      b_.forward_body = false;
    }
  }
}

}  // namespace helios::proxy
