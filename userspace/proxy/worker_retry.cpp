// A lease whose backend died before answering anything goes to another backend
// (proxy/lease_retry.h): armed at lease start, disarmed by the first reply byte, by more client
// bytes, by a kernel splice and by the lease's end.
#include "common/log.h"
#include "pg/error_fields.h"
#include "pg/reader.h"
#include "proxy/worker.h"

namespace helios::proxy {

void Worker::arm_lease_retry(Client* c, pool::Backend* b) {
  LeaseRetry& r = c->retry;
  r.disarm();
  if (!r.again) r.attempts = 0;
  r.again = false;
  if (c->mode == config::PoolMode::kSession || c->pinned || b->tls || c->to_backend.in_flight())
    return;
  if (c->session && (c->session->probe_inflight || c->session->restore_inflight ||
                     c->session->ready_held || c->session->hold_status))
    return;
  size_t n = 0;
  c->to_backend.for_each([&](const uint8_t*, uint32_t len) { n += len; });
  if (n == 0 || n > kLeaseRetryMaxBytes) return;
  r.bytes.clear();
  c->to_backend.for_each([&](const uint8_t* d, uint32_t len) {
    r.bytes.append(reinterpret_cast<const char*>(d), len);
  });
  r.tracker_size = c->tracker.size();
  r.synced = !c->wire.unsynced;
  if (c->session) {
    r.pending = c->session->pending;
    r.clear_backend_statements = c->session->clear_backend_statements;
  }
  r.armed = true;
}

bool Worker::is_shutdown_report(const uint8_t* data, uint32_t len) {
  // What PostgreSQL sends as it ends a session it did not run anything for: FATAL 57P01
  // (terminated by an administrator), 57P02 (crash shutdown), 57P03 (cannot connect now).
  if (len < 5 || data[0] != 'E') return false;
  uint32_t mlen = (uint32_t(data[1]) << 24) | (uint32_t(data[2]) << 16) | (uint32_t(data[3]) << 8) |
                  uint32_t(data[4]);
  if (mlen < 4 || len < 1 + mlen) return false;
  auto fields =
      pg::parse_error_response(std::string_view(reinterpret_cast<const char*>(data) + 5, mlen - 4));
  return fields && fields->is_fatal() && fields->sqlstate.starts_with("57P0");
}

namespace {

// An ErrorResponse (type byte, length, fields: `mlen` as in its header) with SQLSTATE 25006
// read_only_sql_transaction: a hot standby refused a write.
bool is_read_only_refusal(const uint8_t* data, uint32_t mlen) {
  auto f =
      pg::parse_error_response(std::string_view(reinterpret_cast<const char*>(data) + 5, mlen - 4));
  return f && !f->is_fatal() && f->sqlstate == "25006";
}

// After the first ErrorResponse in `replies`: its ReadyForQuery 'I' arrived too (the backend is
// idle and may serve another lease).
bool ends_idle(std::string_view replies) {
  size_t pos = 0;
  while (pos + 5 <= replies.size()) {
    const auto* p = reinterpret_cast<const uint8_t*>(replies.data()) + pos;
    uint32_t mlen =
        (uint32_t(p[1]) << 24) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 8) | uint32_t(p[4]);
    if (mlen < 4 || pos + 1 + size_t(mlen) > replies.size()) return false;
    if (p[0] == 'Z') return mlen == 5 && p[5] == 'I' && pos + 6 == replies.size();
    pos += 1 + size_t(mlen);
  }
  return false;
}

// Replies that report no completed work: the server parsed, bound or described, or told a
// parameter. A FATAL after only these means nothing the client asked for ran to completion.
bool reports_no_work(char type) {
  switch (type) {
    case '1':  // ParseComplete
    case '2':  // BindComplete
    case '3':  // CloseComplete
    case 'S':  // ParameterStatus
    case 'N':  // NoticeResponse
    case 'n':  // NoData
    case 't':  // ParameterDescription
    case 'T':  // RowDescription
      return true;
    default:
      return false;
  }
}

}  // namespace

FirstReply Worker::take_first_reply(Client* c, const uint8_t* data, uint32_t len,
                                    std::string* whole) {
  std::string& held = c->retry.first_reply;
  if (held.empty() && len > 0 && data[0] != 'E' &&
      !(c->retry.synced && reports_no_work(char(data[0]))))
    return FirstReply::kAnswer;
  held.append(reinterpret_cast<const char*>(data), len);
  const auto* p = reinterpret_cast<const uint8_t*>(held.data());
  size_t n = held.size(), pos = 0;
  FirstReply verdict = FirstReply::kPartial;
  while (verdict == FirstReply::kPartial && pos + 5 <= n) {
    uint32_t mlen = (uint32_t(p[pos + 1]) << 24) | (uint32_t(p[pos + 2]) << 16) |
                    (uint32_t(p[pos + 3]) << 8) | uint32_t(p[pos + 4]);
    if (mlen < 4 || pos + 1 + size_t(mlen) > n) break;  // the rest has not arrived
    char type = char(p[pos]);
    if (type == 'E')
      verdict = is_shutdown_report(p + pos, uint32_t(n - pos)) ? FirstReply::kShutdown
                : c->on_replica && c->retry.synced && is_read_only_refusal(p + pos, mlen)
                    ? FirstReply::kReadOnly
                    : FirstReply::kAnswer;
    else if (!c->retry.synced || !reports_no_work(type))
      verdict = FirstReply::kAnswer;
    pos += 1 + size_t(mlen);
  }
  // Held only while the batch ends with a Sync (its ReadyForQuery will come) and briefly.
  if (verdict == FirstReply::kPartial && n < kFirstReplyMaxBytes) return verdict;
  if (verdict == FirstReply::kPartial) verdict = FirstReply::kAnswer;
  *whole = std::move(held);
  held.clear();
  return verdict;
}

bool Worker::retry_lease(Client* c, pool::Backend* b) {
  LeaseRetry& r = c->retry;
  if (r.armed && c->backend == b && c->to_backend.in_flight() && !r.deferred &&
      c->state == ClientState::kActive) {
    // The send must end first (its buffers are in the kernel's hands): on_backend_send retries.
    r.deferred = true;
    b->broken = true;
    return true;
  }
  if (!r.armed || c->backend != b || stopping_ || c->to_backend.in_flight() ||
      r.attempts >= kLeaseRetryMaxAttempts || c->state != ClientState::kActive || path_->holds(c))
    return false;
  ++r.attempts;
  log::info(
      "worker {}: backend pid {} of pool {} ended before answering; its transaction goes "
      "to another backend (attempt {})",
      id_, b->process_id, c->pool->name(), r.attempts);
  ctx_.metrics.count_lease_retry();
  b->broken = true;
  rewind_lease(c);
  need_backend(c);
  return true;
}

void Worker::rewind_lease(Client* c) {
  LeaseRetry& r = c->retry;
  // The backend's injected messages go, the client's own messages are queued again, and the
  // next backend gets its own injections.
  if (c->tracker.size() > r.tracker_size)
    c->tracker.drop_front(track_pool_, c->tracker.size() - r.tracker_size);
  c->to_backend.clear(*chunks_);
  c->to_backend.push_owned(*chunks_, r.bytes);
  if (c->session) {
    c->session->pending = std::move(r.pending);
    c->session->clear_backend_statements = r.clear_backend_statements;
  }
  r.disarm();
  r.again = true;
  c->backend = nullptr;
  ctx_.on_lease_end(c);
  set_state(c, ClientState::kIdle, monotonic_now());
}

bool Worker::retry_on_primary(Client* c, pool::Backend* b, std::string_view replies) {
  LeaseRetry& r = c->retry;
  if (!r.armed || !c->on_replica || c->backend != b || stopping_ || c->to_backend.in_flight() ||
      c->state != ClientState::kActive || path_->holds(c))
    return false;
  log::info(
      "worker {}: replica backend pid {} of pool {} refused a write (25006); the batch runs "
      "on the primary",
      id_, b->process_id, b->pool->name());
  ctx_.metrics.count_replica_write_retry();
  // The replica answered in full (error, then ReadyForQuery 'I'): it can serve again.
  const bool idle = ends_idle(replies);
  if (idle) b->tx_status = 'I';
  b->broken = b->broken || !idle;
  rewind_lease(c);
  c->force_primary = true;
  b->finish = idle ? pool::Backend::Finish::kRelease : pool::Backend::Finish::kDiscard;
  finish_backend(b);
  need_backend(c);
  return true;
}

}  // namespace helios::proxy
