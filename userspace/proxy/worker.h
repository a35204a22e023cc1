// A worker: one thread, one io_uring, one SO_REUSEPORT listener, and the clients it accepted.
// Everything a client does happens here: startup and auth, queueing for a backend, moving the
// bytes of its leases (the user-space data path), timeouts and close. Backends are global; a
// worker owns a backend only for the length of one of its clients' leases.
//
// Cross-thread input arrives as msg_ring completions: grants and failures from pools, and
// "mail" (closures run on this thread: auth results, cancels, reloads, drain).
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/rate_limiter.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "io/buffer_ring.h"
#include "io/ring.h"
#include "io/send_queue.h"
#include "pg/credential.h"
#include "pg/role_record.h"
#include "proxy/client.h"
#include "proxy/context.h"
#include "proxy/lease_path.h"
#include "proxy/reply_decoder.h"
#include "proxy/ring_op.h"

namespace helios::proxy {

// Backpressure: stop reading a peer while the other side has this much queued; resume below
// the lower mark.
constexpr uint32_t kPauseBytes = 512 * 1024;
constexpr uint32_t kResumeBytes = 128 * 1024;
// Receive-buffer id meaning "this data is not in a provided buffer" (TLS plaintext): handlers
// copy it instead of referencing the buffer.
constexpr int32_t kNoBuffer = -1;
// During a drain, a client idle longer than this is closed at once; a fresher one (it probably
// just logged in) may run a transaction first.
constexpr Nanos kDrainIdleGrace = 1000 * kNanosPerMilli;
// A closing client gets this long to read its final error; then its socket is shut (a peer
// that never reads must not hold the connection and its queued replies forever).
constexpr Nanos kClosingLinger = 5000 * kNanosPerMilli;
// Log lines about refused clients (failed logins, protocol violations, quota refusals) per
// second per worker; the rest are counted and summarised in the next line.
constexpr uint32_t kSecurityLogPerSecond = 20;

class Worker final : public pool::Messenger {
 public:
  Worker(uint16_t id, SharedContext& ctx);
  ~Worker() override;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Creates the ring, the buffer ring and the listener. Called before run().
  Status init(UniqueFd listener);
  void run();  // thread body; returns after stop() once every client is gone

  // Any thread: queue a closure to run on this worker, and wake it.
  void post(std::function<void(Worker&)> fn, pool::Messenger& via);
  int ring_fd() const { return ring_->fd(); }
  uint16_t id() const { return id_; }

  // Messenger (pool decisions made on this thread).
  void grant(const pool::Waiter& w, pool::Backend* b) override;
  void fail(const pool::Waiter& w, pool::WaitFailure why) override;
  void mail(uint16_t worker) override;

  // Mail handlers (run on this thread).
  void on_config(std::shared_ptr<const RuntimeConfig> cfg);
  void on_cancel(uint32_t slot, uint32_t key);
  // A CancelRequest: to the owning worker here, or on to the owning fleet instance
  // (worker_cancel.cpp).
  void route_cancel(int32_t pid, uint32_t key);
  static uint32_t cancel_secret();  // 32 random bits from a CSPRNG
  void on_gate_open(uint32_t slot, uint32_t gen, tenant::TenantState* t);
  void on_fleet_admission(uint32_t slot, uint32_t gen, tenant::TenantState* t, bool admitted);
  // A client another worker handed over between two of its transactions (worker_move.cpp).
  void adopt(std::shared_ptr<Client> moved);
  void begin_drain(Nanos deadline);
  void drain_if_idle(Client* c);
  void drain_deadline_passed();
  // Sends a CancelRequest for what runs on b (from a connector thread; dropped if the lease
  // has moved on by then).
  void cancel_backend_query(pool::Backend* b);
  bool initialized() const { return ring_ != nullptr; }
  bool finished() const { return finished_.load(std::memory_order_acquire); }

  struct Stats {
    std::atomic<int64_t> clients{0};
    std::atomic<uint64_t> bytes_from_clients{0};
    std::atomic<uint64_t> bytes_from_backends{0};
    std::atomic<int64_t> recv_buffers_free{-1};  // BufferRing::available(); -1: unknown
    std::atomic<uint64_t> send_copied_bytes{0};  // ChunkPool::copied_bytes(): waited, copied
    std::atomic<uint64_t> leases{0};             // leases started (the load the workers balance)
    std::atomic<uint64_t> moved_in{0};           // clients handed over by other workers
    std::atomic<uint64_t> moved_out{0};          // ... and to them
  };
  const Stats& stats() const { return stats_; }

 private:
  friend class WorkerClientSink;
  friend class WorkerReplySink;
  friend class KernelPath;
  friend struct StartupHandler;

  void send_msg(uint16_t worker, uint32_t res, uint64_t user_data);

  // ---- loop
  void dispatch(const io_uring_cqe& cqe);
  void on_tick(Nanos now);
  void drain_mail();
  void run_deferred();

  // ---- accept and client lifecycle
  void arm_accept();
  void on_accept(int res, uint32_t flags);
  Client* client_at(uint32_t slot, uint32_t gen);
  Client* take_slot();  // a fresh slot (next generation), or null when the key layout is full
  Client* new_client(int fd);
  // The one place a client changes state (client_state.h); false if the transition was refused.
  bool set_state(Client* c, ClientState s, Nanos now);
  void close_client(Client* c);  // stop input, flush output, then free
  void abort_client(Client* c);  // drop everything now
  void maybe_free(Client* c);    // frees once no I/O references the slot
  void detach_backend_on_close(Client* c);

  // ---- workers that follow the load (proxy/worker_move.cpp)
  // From the tick: a parked worker (id >= ctx_.active_workers) hands every client at rest to the
  // awake ones; an awake worker with clearly more leases than the others hands some over.
  void follow_load(Nanos now);
  bool at_rest(const Client* c) const;  // between transactions, nothing in flight but its recv
  void begin_move(Client* c, uint16_t to);
  // The recv of a moving client ended cancelled: hand it over if it is still at rest (true).
  bool finish_move(Client* c);
  // Moves up to `budget` clients at rest for which want(c) holds, scanning from move_cursor_;
  // to(c) picks each one's worker.
  template <class Want, class To>
  uint32_t move_some(uint32_t budget, Want&& want, To&& to);

  // ---- client I/O
  void arm_client_recv(Client* c);
  void on_client_recv(Client* c, int res, uint32_t flags);
  void submit_send(io::SendQueue& q, int fd, uint64_t user_data);
  void complete_send(io::SendQueue& q, int res);
  uint32_t client_backlog(const Client* c) const;  // bytes queued to the client, any form
  void flush_client(Client* c);
  void on_client_send(Client* c, int res);
  void queue_to_client(Client* c, std::string_view bytes);
  void send_error(Client* c, bool fatal, std::string_view sqlstate, std::string_view message,
                  std::string_view detail = {});

  // ---- startup and auth (proxy/worker_startup.cpp)
  void on_startup_bytes(Client* c, const uint8_t* data, uint32_t len);
  void on_startup_packet(Client* c, std::string_view packet);
  void on_credential(Client* c, Result<pg::RoleRecord> record);
  // [auth] type = "trust": no password, but the role must exist and have LOGIN (worker_trust.cpp).
  void on_trusted(Client* c, Result<pg::RoleRecord> record);
  void on_auth_message(Client* c, char type, std::string_view body);
  void on_authenticated(Client* c, pool::LoginSecret login);
  void finish_login(Client* c, pool::LoginSecret login);  // counted in its tenant: welcome
  // [fleet]: the tenant's local share is full; wait for the fleet agent (worker_fleet.cpp).
  void wait_fleet_share(Client* c, pool::LoginSecret login);
  void send_welcome(Client* c);
  void fail_startup(Client* c, std::string_view sqlstate, std::string_view message);
  // Refuses a client before it authenticated: counted by reason, logged (rate-limited), FATAL.
  void refuse_preauth(Client* c, PreauthRefusal why, std::string_view sqlstate,
                      std::string_view message);
  // A failed or refused login: counted by reason, logged (rate-limited), FATAL.
  // `log_detail` goes to the log line only (why, where the client must not learn it).
  void refuse_login(Client* c, LoginFailure why, std::string_view sqlstate,
                    std::string_view message, std::string_view log_detail = {});
  // A rate-limited log line about a client (source address, user and tenant when known;
  // proxy/worker_refusal_log.cpp).
  void security_log(const Client* c, std::string_view what);
  // A quota or limit refused the client's request: counted for its tenant, logged (rate-limited).
  void refuse_quota(Client* c, tenant::Rejection why, std::string_view message);
  // Counts the client against its source's unauthenticated connections; false if over.
  bool enter_preauth(Client* c);
  // The client is authenticated or gone: it no longer counts against its source.
  void leave_preauth(Client* c);

  // ---- relay: the user-space data path (worker_relay_client/_backend/_send.cpp)
  void on_client_data(Client* c, int32_t bid, const uint8_t* data, uint32_t len);
  void flush_backend(Client* c);
  void on_backend_send(Client* c, int res);
  void arm_backend_recv(pool::Backend* b);
  void rearm_starved();
  // Backpressure on a backend whose client has too much unread (worker_relay_backend.cpp).
  void pause_backend_recv(pool::Backend* b);
  void restore_user_timeout(pool::Backend* b);
  void on_backend_recv(pool::Backend* b, int res, uint32_t flags);
  void on_backend_data(pool::Backend* b, Client* c, uint16_t bid, uint32_t len);
  void after_replies(Client* c, pool::Backend* b, const ReplyResult& h);
  void on_backend_recv_unattached(pool::Backend* b, bool had_data);
  void on_control_send(pool::Backend* b, int res);
  // Backpressure on a client's requests: reading stops while the backend has not taken what
  // is queued for it, or the client has not read what is queued for it (either queue past
  // kPauseBytes), and starts again once both are under kResumeBytes.
  void update_client_input(Client* c);
  void pause_client_input(Client* c);
  void emit_synthetic(Client* c);  // synthesized replies now due, to the client
  // Session effects of a statement (SET tracking, pins, DEALLOCATE/DISCARD); false = refused.
  bool apply_effects(Client* c, const std::vector<session::SessionEffect>& effects,
                     std::string* refusal);
  // A ReadyForQuery of the client's own arrived (outstanding counted down): staged effects of
  // answered statements join their transaction, which commits them or drops them as it ends.
  void settle_effects(Client* c, char tx_status);
  void commit_effects(Client* c, const std::vector<session::SessionEffect>& effects);
  void deallocate_all(Client* c);
  // The session-state probe (worker_probe.cpp): sent at a lease's end when its statements may
  // have changed session state; its answer is adopted before the backend can go.
  bool hold_ready_for_probe(Client* c, pool::Backend* b);
  void send_session_probe(Client* c);
  void on_probe_message(Client* c, pool::Backend* b, char type, std::string_view body,
                        bool complete);
  void adopt_session_probe(Client* c, pool::Backend* b);
  // The client's startup values after a reset (worker_restore.cpp): at the ReadyForQuery of the
  // resetting statement, a swallowed query puts them back before that ReadyForQuery is sent.
  bool hold_ready_for_restore(Client* c, pool::Backend* b);
  void restore_done(Client* c, pool::Backend* b);
  // The backend's record of the client's startup parameters becomes unknown (set at next sync).
  void forget_restored_values(Client* c, pool::Backend* b);
  // A ParameterStatus for the client while a reset's are held: kept (true) to be sent as the net
  // change by release_parameter_status() before the ReadyForQuery.
  bool hold_parameter_status(Client* c, pool::Backend* b, std::string_view body);
  void release_parameter_status(Client* c);
  void ensure_prepared(Client* c, pool::Backend* b, const session::PreparedPtr& stmt,
                       std::string& out, bool front);
  void resume_client_input(Client* c);

  // ---- SQL that names the client's protocol-prepared statements (proxy/worker_statement_sql.cpp)
  StatementSql map_statement_sql(Client* c, std::string_view sql, bool complete, bool simple_query,
                                 bool quiet, std::string* rewritten, std::string* refusal);

  // ---- tenant quotas (proxy/worker_quota.cpp)
  bool admit_queries(Client* c, Nanos now);  // QPS tokens for the statements received
  void check_throttled(Client* c, Nanos now);
  void check_transaction_duration(Client* c, Nanos now);
  // idle_transaction_timeout: a client that keeps its transaction open without a word.
  void check_idle_transaction(Client* c, Nanos now);
  // query_timeout ([connection_pool], or the tenant's): cancels a statement running too long.
  void check_query_timeout(Client* c, Nanos now);
  void release_active(Client* c);          // gives back the client's max_active slot
  void pass_gate(tenant::TenantState* t);  // a slot of t is free: wake its next waiter
  config::PoolMode lease_mode(const Client* c) const;
  void follow_tenant(Client* c, const std::string& name);  // session mode SET application_name

  // ---- the data path (lease_path.h): user space, or the kernel path (kernel_path.h) when the
  // splice engine is loaded. Chosen when the worker starts running.
  std::unique_ptr<LeasePath> path_;

  // ---- leases (proxy/worker_lease.cpp)
  void need_backend(Client* c);
  void on_grant(uint32_t slot, uint32_t gen, uint32_t backend_index);
  void on_wait_failed(uint32_t slot, uint32_t gen, pool::WaitFailure why);
  void start_lease(Client* c, pool::Backend* b);
  void sync_parameters(Client* c, pool::Backend* b);
  void prepare_pending(Client* c, pool::Backend* b);
  void maybe_end_lease(Client* c);
  // `answered` ReadyForQuery messages reached the client (relayed, or forwarded by the kernel
  // during a lease) and c->outstanding already counts what is still owed: each is a query of its
  // tenant, and a finished transaction stops the duration and idle clocks. The one copy of this
  // bookkeeping, for both data paths.
  void note_replies(Client* c, uint32_t answered, char tx_status);
  void end_lease(Client* c);
  void finish_backend(pool::Backend* b);  // release or discard once nothing is in flight
  void begin_cleanup(pool::Backend* b, bool rollback, bool reset);
  void on_acquire_timeout(Client* c);
  void poll_primary_wait(Client* c);  // failover: waiting for a primary (worker_lease.cpp)
  // A backend that dies before answering (proxy/worker_retry.cpp, lease_retry.h).
  void arm_lease_retry(Client* c, pool::Backend* b);  // lease start, before the injections
  // b ended before its first reply: the transaction goes to another backend. False when it
  // may not (then the client gets the error as before).
  bool retry_lease(Client* c, pool::Backend* b);
  // A replica answered the lease's batch with 25006 before anything reached the client
  // (`replies`: everything it sent so far): the batch runs on the primary instead. False when
  // it may not (then the client gets the error).
  bool retry_on_primary(Client* c, pool::Backend* b, std::string_view replies);
  // Back to the moment the lease began: the client's messages queued again, the backend's
  // injections undone (shared by both retries).
  void rewind_lease(Client* c);
  // data starts with a complete FATAL ErrorResponse of class 57P0 (shutdown, termination).
  static bool is_shutdown_report(const uint8_t* data, uint32_t len);
  // Bytes of the lease's first replies while its retry is armed, held in
  // LeaseRetry::first_reply until they tell (lease_retry.h). When bytes were held, *whole gets
  // everything received so far (to relay instead of `data`) unless the answer is kPartial.
  FirstReply take_first_reply(Client* c, const uint8_t* data, uint32_t len, std::string* whole);
  // ---- a lease's server went away (proxy/worker_backend_loss.cpp)
  // The server of c's lease b ended (EOF, reset, or a FATAL it sent on its own). Transaction and
  // statement mode, unpinned client, no reply message cut: what the client was owed becomes
  // ErrorResponse 08006 + ReadyForQuery 'I' per request (its transaction is gone) and it keeps
  // its connection. False when it cannot (the caller closes the client as before).
  bool survive_backend_loss(Client* c, pool::Backend* b, std::string_view why);
  // Whether a lost backend leaves c connected (the mode and session conditions above).
  bool may_survive_loss(const Client* c) const;
  // The client's statements queued after its transaction was lost while it sat idle in it.
  void answer_lost_transaction(Client* c);
  // A lease for the primary could not connect (network error): the host loses the role at once
  // and the client waits for a primary (failover_timeout). False when that does not apply.
  bool await_primary_after_failure(Client* c);
  // A queued client whose lease needs a primary waits for one (poll_primary_wait), until
  // failover_timeout from its first wait for this lease. False: no such wait (fail it).
  bool await_primary(Client* c);
  // Fails the statements a queued client is waiting to run (or the client, if it can't).
  void fail_pending(Client* c, std::string_view sqlstate, std::string_view message);

  uint16_t id_;
  SharedContext& ctx_;
  std::shared_ptr<const RuntimeConfig> cfg_;
  std::unique_ptr<io::Ring> ring_;
  std::unique_ptr<io::BufferRing> bufs_;
  std::unique_ptr<io::ChunkPool> chunks_;
  io::SendOpPool send_ops_;
  session::TrackBlockPool track_pool_;
  UniqueFd listener_;
  bool accept_armed_ = false;
  Nanos accept_backoff_until_ = 0;  // out of descriptors: accepting again after this
  bool accept_starved_logged_ = false;
  bool accepting_ = true;
  bool stopping_ = false;
  Nanos drain_deadline_ = 0;
  std::atomic<bool> finished_{false};

  static constexpr uint32_t kClientChunkSize = 1024;
  // Client slab: stable addresses, slots reused through a free list.
  std::vector<std::unique_ptr<Client[]>> client_chunks_;
  std::vector<uint32_t> free_slots_;
  uint32_t slots_used_ = 0;

  // Per-state timer lists (FIFO by entry time, so deadlines are checked from the head).
  struct TimerList {
    Client* head = nullptr;
    Client* tail = nullptr;
  };
  TimerList startup_list_, queued_list_, active_list_, throttled_list_, closing_list_;
  TimerList* list_for(ClientState s);

  // Workers that follow the load (worker_move.cpp).
  uint32_t move_cursor_ = 0;           // next slot the hand-over scan looks at
  uint32_t move_rr_ = 0;               // round robin over the awake workers
  Nanos next_follow_ = 0;              // next follow_load()
  Nanos next_balance_ = 0;             // next comparison of the awake workers' leases
  std::vector<uint64_t> seen_leases_;  // each worker's Stats::leases at that comparison

  std::vector<Client*> starved_;  // multishot recv ended with ENOBUFS
  // Leases whose backend recv ended with ENOBUFS: (client slot, gen), re-armed by rearm_starved.
  std::vector<std::pair<uint32_t, uint32_t>> starved_leases_;
  std::vector<std::pair<pool::Waiter, pool::Backend*>> deferred_grants_;

  std::mutex mail_mu_;
  std::vector<std::function<void(Worker&)>> mail_;
  std::atomic<bool> mail_flagged_{false};

  Nanos next_tick_ = 0;
  Nanos now_ = 0;
  std::string tenant_parameter_;  // lower-case startup parameter naming the tenant  // clock read
                                  // once per loop iteration, for data-path timestamps
  std::vector<std::pair<Client*, std::string>> tenant_changes_;  // applied after a feed
  Stats stats_;
  RateLimiter security_log_{kSecurityLogPerSecond};
  RateLimiter bug_log_{1};  // lines about refused state transitions (a bug), per second
};

}  // namespace helios::proxy
