// Which reply the backend owes for each message sent to it, in order.
//
// The proxy sometimes changes the message stream of a lease: it skips a Parse the backend
// already has (and must then hand the client a ParseComplete of its own, at the right place),
// answers a Close itself, or injects a Parse or a SET the client never sent (whose replies the
// client must not see). PostgreSQL answers every message in order, and after an error in the
// extended protocol it skips everything up to the next Sync. The tracker mirrors exactly that:
// one entry per message that gets a reply, matched against the replies as they arrive, so each
// reply is forwarded or swallowed, and synthesized replies are emitted in sequence.
//
// Storage: fixed blocks from a per-worker BlockPool, so a steady stream of leases allocates
// nothing; an empty tracker holds no block.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <vector>

namespace helios::session {

enum class Expect : uint8_t {
  kParse,           // '1'
  kBind,            // '2'
  kClose,           // '3'
  kDescribeStmt,    // 't' then 'T' or 'n'
  kDescribePortal,  // 'T' or 'n'
  kExecute,         // rows / COPY ... then 'C', 'I' or 's'
  kSync,            // 'Z'
  kQuery,           // simple Query or FunctionCall: everything up to 'Z'
};

enum class Reply : uint8_t {
  kForward,     // the client sent it and gets the reply
  kSwallow,     // the proxy injected it: the reply is dropped
  kSynthParse,  // the proxy skipped the message: emit ParseComplete to the client
  kSynthClose,  // emit CloseComplete
  kSynthReady,  // emit ReadyForQuery (a Sync the proxy answered: nothing reached a server)
  kProbe,       // the proxy's session-state probe: its rows are read by the proxy, not forwarded
};

struct TrackEntry {
  Expect expect;
  Reply reply;
  bool seen_first;  // kDescribeStmt: 't' arrived
  uint32_t stmt;    // prepared statement id the message refers to (0 = none)
};

class TrackBlockPool {
 public:
  static constexpr uint32_t kEntries = 30;
  struct Block {
    Block* next;
    TrackEntry e[kEntries];
  };
  ~TrackBlockPool() {
    for (Block* b : all_) std::free(b);
  }
  Block* get() {
    if (!free_) {
      auto* b = static_cast<Block*>(std::malloc(sizeof(Block)));
      all_.push_back(b);
      b->next = nullptr;
      free_ = b;
    }
    Block* b = free_;
    free_ = b->next;
    b->next = nullptr;
    return b;
  }
  void put(Block* b) {
    b->next = free_;
    free_ = b;
  }

 private:
  Block* free_ = nullptr;
  std::vector<Block*> all_;
};

class ResponseTracker {
 public:
  // Empty: the server owes nothing. While skipping after an error, the server still owes the
  // ReadyForQuery of a Sync the client has not sent yet.
  bool empty() const { return size_ == 0 && !skipping_; }
  uint32_t size() const { return size_; }

  void push(TrackBlockPool& pool, Expect e, Reply r, uint32_t stmt = 0);
  // Puts entries for proxy-injected messages in front of everything queued (lease start).
  void push_front(TrackBlockPool& pool, Expect e, Reply r, uint32_t stmt = 0);
  void clear(TrackBlockPool& pool);
  // Drops the first n entries (a lease's injected messages that its backend never answered).
  void drop_front(TrackBlockPool& pool, uint32_t n) {
    while (n-- > 0 && size_ > 0) pop(pool);
  }

  struct Outcome {
    bool forward = true;             // send this backend message to the client
    bool unexpected = false;         // no entry wanted it (a protocol mismatch): treat as broken
    bool failed = false;             // it was an ErrorResponse for an entry
    bool probe = false;              // it answers the proxy's session-state probe
    Expect expect = Expect::kQuery;  // the entry it belonged to
    uint32_t stmt = 0;
  };
  // A backend message of `type` arrived (not NoticeResponse, ParameterStatus or
  // NotificationResponse, which are asynchronous and always forwarded). Entries the server
  // skipped after an error are passed to `skipped(ctx, entry)` as they are dropped (a Parse it
  // skipped never created its statement).
  using SkipFn = void (*)(void* ctx, const TrackEntry& e);
  Outcome on_backend_message(TrackBlockPool& pool, char type, SkipFn skipped = nullptr,
                             void* ctx = nullptr);

  // Synthesized replies now at the head, in order: calls emit(reply) for each and pops it.
  template <typename F>
  void drain_synthetic(TrackBlockPool& pool, F&& emit) {
    while (size_ && !skipping_ && is_synthetic(front()->reply)) {
      emit(front()->reply);
      pop(pool);
    }
  }

  const TrackEntry* head() const { return size_ ? &head_->e[head_idx_] : nullptr; }
  static bool is_synthetic(Reply r) {
    return r == Reply::kSynthParse || r == Reply::kSynthClose || r == Reply::kSynthReady;
  }
  // True if every pending reply is one the proxy makes up (no server involved).
  bool only_synthetic() const;
  // The server answered an extended-protocol message with an error and skips to a Sync the
  // client has not sent yet.
  bool skipping() const { return skipping_; }
  // Calls fn(entry) for every pending entry, in order.
  template <typename F>
  void for_each(F&& fn) const {
    every_entry([&](const TrackEntry& e) {
      fn(e);
      return true;
    });
  }
  // True if every pending reply answers the session-state probe, ending with its Sync (and the
  // server is not skipping to a Sync for something else).
  bool only_probe() const;

  // Kernel data path (proxy/kernel_path.cpp). True when every pending reply goes to the
  // client exactly as the server sends it: nothing synthesized or swallowed, no prepared
  // statement to follow, not skipping after an error. Only then may the kernel carry them.
  bool all_forwarded() const;
  // The kernel forwarded the replies to the first `n` requests that end in a ReadyForQuery
  // (Query, Sync): drop their entries.
  void drop_answered(TrackBlockPool& pool, uint32_t n);
  // The kernel may have forwarded part of the next request's replies: its entries become one
  // that takes everything up to its ReadyForQuery.
  void merge_head_request(TrackBlockPool& pool);

 private:
  TrackEntry* front() { return size_ ? &head_->e[head_idx_] : nullptr; }
  // True if pred(entry) holds for every pending entry, in order.
  template <typename Pred>
  bool every_entry(Pred&& pred) const {
    const TrackBlockPool::Block* b = head_;
    uint32_t idx = head_idx_;
    for (uint32_t n = 0; n < size_; ++n, ++idx) {
      if (idx == TrackBlockPool::kEntries) {
        b = b->next;
        idx = 0;
      }
      if (!pred(b->e[idx])) return false;
    }
    return true;
  }
  void pop(TrackBlockPool& pool);
  void release_blocks(TrackBlockPool& pool);
  // After an error: PostgreSQL skips every message up to the next Sync. If that Sync is not
  // queued yet, the tracker stays `skipping_` and drops what comes until the Sync's reply.
  void skip_to_sync(TrackBlockPool& pool, SkipFn skipped, void* ctx);

  TrackBlockPool::Block* head_ = nullptr;
  TrackBlockPool::Block* tail_ = nullptr;
  uint32_t head_idx_ = 0;  // first live entry in head_
  uint32_t tail_idx_ = 0;  // next free slot in tail_
  uint32_t size_ = 0;
  bool skipping_ = false;
};

}  // namespace helios::session
