// The task queue behind the admin and metrics HTTP servers (cpp-httplib's TaskQueue).
//
// httplib accepts a connection and queues "serve this socket" as one task; the task keeps its
// thread while the client is idle (up to the keep-alive timeout) and between keep-alive
// requests. With a fixed pool of a few threads, a handful of idle TCP connections therefore
// starve /health and /metrics (a liveness probe then kills a healthy proxy).
//
// This queue starts a thread per waiting task, up to `max_threads`, so an idle connection only
// costs a parked thread for as long as the server's keep-alive timeout lets it wait; threads
// left without work exit after `idle_exit`. Beyond max_threads tasks wait their turn in FIFO
// order (each connection being bounded by the timeouts, the wait is bounded too).
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace helios::ops {

class ElasticTaskQueue final : public httplib::TaskQueue {
 public:
  ElasticTaskQueue(size_t max_threads, std::chrono::milliseconds idle_exit);
  ~ElasticTaskQueue() override;
  ElasticTaskQueue(const ElasticTaskQueue&) = delete;
  ElasticTaskQueue& operator=(const ElasticTaskQueue&) = delete;

  void enqueue(std::function<void()> fn) override;
  // Runs what is queued, then joins every thread.
  void shutdown() override;

  size_t threads() const;

 private:
  void run();
  void reap_locked();

  const size_t max_threads_;
  const std::chrono::milliseconds idle_exit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  std::vector<std::thread::id> exited_;
  size_t live_ = 0;  // threads running run()
  size_t idle_ = 0;  // of them, waiting for a job
  bool shutdown_ = false;
};

}  // namespace helios::ops
