#include "session/response_tracker.h"

namespace helios::session {

void ResponseTracker::push(TrackBlockPool& pool, Expect e, Reply r, uint32_t stmt) {
  if (!tail_) {
    head_ = tail_ = pool.get();
    head_idx_ = tail_idx_ = 0;
  } else if (tail_idx_ == TrackBlockPool::kEntries) {
    TrackBlockPool::Block* b = pool.get();
    tail_->next = b;
    tail_ = b;
    tail_idx_ = 0;
  }
  tail_->e[tail_idx_++] = TrackEntry{e, r, false, stmt};
  ++size_;
}

void ResponseTracker::push_front(TrackBlockPool& pool, Expect e, Reply r, uint32_t stmt) {
  if (!head_) {
    push(pool, e, r, stmt);
    return;
  }
  if (head_idx_ == 0) {
    TrackBlockPool::Block* b = pool.get();
    b->next = head_;
    head_ = b;
    head_idx_ = TrackBlockPool::kEntries;
  }
  head_->e[--head_idx_] = TrackEntry{e, r, false, stmt};
  ++size_;
}

void ResponseTracker::pop(TrackBlockPool& pool) {
  if (!size_) return;
  --size_;
  ++head_idx_;
  if (size_ == 0) {  // empty: give every block back
    release_blocks(pool);
    return;
  }
  if (head_idx_ == TrackBlockPool::kEntries) {
    TrackBlockPool::Block* next = head_->next;
    pool.put(head_);
    head_ = next;
    head_idx_ = 0;
  }
}

void ResponseTracker::clear(TrackBlockPool& pool) {
  release_blocks(pool);
  skipping_ = false;
}

void ResponseTracker::release_blocks(TrackBlockPool& pool) {
  while (head_) {
    TrackBlockPool::Block* next = head_->next;
    pool.put(head_);
    head_ = next;
  }
  tail_ = nullptr;
  head_idx_ = tail_idx_ = 0;
  size_ = 0;
}

bool ResponseTracker::only_synthetic() const {
  return every_entry([](const TrackEntry& e) { return is_synthetic(e.reply); });
}

bool ResponseTracker::only_probe() const {
  return size_ > 0 && !skipping_ &&
         every_entry([](const TrackEntry& e) { return e.reply == Reply::kProbe; });
}

bool ResponseTracker::all_forwarded() const {
  return !skipping_ &&
         every_entry([](const TrackEntry& e) { return e.reply == Reply::kForward && e.stmt == 0; });
}

static bool ends_in_ready(Expect e) {
  return e == Expect::kSync || e == Expect::kQuery;
}

void ResponseTracker::drop_answered(TrackBlockPool& pool, uint32_t n) {
  while (n > 0 && size_) {
    if (ends_in_ready(front()->expect)) --n;
    pop(pool);
  }
}

void ResponseTracker::merge_head_request(TrackBlockPool& pool) {
  while (size_ && !ends_in_ready(front()->expect)) pop(pool);
  if (size_) *front() = TrackEntry{Expect::kQuery, Reply::kForward, false, 0};
}

void ResponseTracker::skip_to_sync(TrackBlockPool& pool, SkipFn skipped, void* ctx) {
  while (size_ && front()->expect != Expect::kSync) {
    if (skipped) skipped(ctx, *front());
    pop(pool);
  }
  skipping_ = size_ == 0;
}

ResponseTracker::Outcome ResponseTracker::on_backend_message(TrackBlockPool& pool, char type,
                                                             SkipFn skipped, void* ctx) {
  Outcome o;
  if (skipping_) {
    // The ReadyForQuery of the Sync that ends the skipped run: drop everything queued before
    // that Sync (the server skipped it) and match the reply to the Sync.
    if (type != 'Z') {
      o.unexpected = true;
      return o;
    }
    skip_to_sync(pool, skipped, ctx);
    if (skipping_) {  // no Sync queued at all: a reply nobody asked for
      o.unexpected = true;
      return o;
    }
  }
  TrackEntry* h = front();
  if (!h) {
    o.unexpected = true;
    return o;
  }
  o.expect = h->expect;
  o.stmt = h->stmt;
  o.forward = h->reply == Reply::kForward;
  o.probe = h->reply == Reply::kProbe;
  if (type == 'E') {
    o.failed = true;
    // A simple Query goes on to its ReadyForQuery; so does an error answering a Sync.
    if (h->expect == Expect::kQuery || h->expect == Expect::kSync) return o;
    if (skipped) skipped(ctx, *h);
    pop(pool);
    skip_to_sync(pool, skipped, ctx);
    return o;
  }
  bool done = false;
  switch (h->expect) {
    case Expect::kParse:
      done = type == '1';
      o.unexpected = !done;
      break;
    case Expect::kBind:
      done = type == '2';
      o.unexpected = !done;
      break;
    case Expect::kClose:
      done = type == '3';
      o.unexpected = !done;
      break;
    case Expect::kDescribeStmt:
      if (!h->seen_first && type == 't') {
        h->seen_first = true;
      } else if (type == 'T' || type == 'n') {
        done = true;
      } else {
        o.unexpected = true;
      }
      break;
    case Expect::kDescribePortal:
      done = type == 'T' || type == 'n';
      o.unexpected = !done;
      break;
    case Expect::kExecute:
      done = type == 'C' || type == 'I' || type == 's';
      break;
    case Expect::kSync:
      done = type == 'Z';
      o.unexpected = !done;
      break;
    case Expect::kQuery:
      done = type == 'Z';
      break;
  }
  if (done) pop(pool);
  return o;
}

}  // namespace helios::session
