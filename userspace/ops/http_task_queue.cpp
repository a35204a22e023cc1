#include "ops/http_task_queue.h"

#include <algorithm>

namespace helios::ops {

ElasticTaskQueue::ElasticTaskQueue(size_t max_threads, std::chrono::milliseconds idle_exit)
    : max_threads_(std::max<size_t>(max_threads, 1)), idle_exit_(idle_exit) {}

ElasticTaskQueue::~ElasticTaskQueue() {
  shutdown();
}

void ElasticTaskQueue::enqueue(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  if (shutdown_) return;
  jobs_.push_back(std::move(fn));
  reap_locked();
  // A new thread when every running one is busy (idle_ counts threads not yet woken for
  // earlier jobs too, hence the comparison with the queue length).
  if (idle_ < jobs_.size() && live_ < max_threads_) {
    ++live_;
    threads_.emplace_back([this] { run(); });
  }
  cv_.notify_one();
}

void ElasticTaskQueue::shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
    threads.swap(threads_);
    exited_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads)
    if (t.joinable()) t.join();
}

size_t ElasticTaskQueue::threads() const {
  std::lock_guard lock(mu_);
  return live_;
}

// Joins threads that left run() (called with mu_ held; they no longer take the lock).
void ElasticTaskQueue::reap_locked() {
  if (exited_.empty()) return;
  for (auto id : exited_) {
    auto it = std::find_if(threads_.begin(), threads_.end(),
                           [id](const std::thread& t) { return t.get_id() == id; });
    if (it == threads_.end()) continue;
    it->join();
    threads_.erase(it);
  }
  exited_.clear();
}

void ElasticTaskQueue::run() {
  std::unique_lock lock(mu_);
  while (true) {
    ++idle_;
    bool woke = cv_.wait_for(lock, idle_exit_, [this] { return !jobs_.empty() || shutdown_; });
    --idle_;
    if (jobs_.empty() && (shutdown_ || !woke)) break;
    std::function<void()> fn = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    fn();
    lock.lock();
  }
  --live_;
  if (!shutdown_) exited_.push_back(std::this_thread::get_id());
}

}  // namespace helios::ops
