// A histogram the data path can update from any thread with no lock and no allocation:
// fixed bucket bounds, relaxed atomic counters. Exported by the metrics layer at scrape time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/clock.h"

namespace helios {

class AtomicHistogram {
 public:
  // Upper bounds in seconds, strictly increasing (Prometheus "le"); +Inf is implicit.
  explicit AtomicHistogram(std::vector<double> bounds_seconds)
      : bounds_(std::move(bounds_seconds)),
        bounds_ns_(bounds_.size()),
        counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
    for (size_t i = 0; i < bounds_.size(); ++i) bounds_ns_[i] = Nanos(bounds_[i] * 1e9);
    for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
  }

  void observe(Nanos v) {
    size_t i = 0;
    while (i < bounds_ns_.size() && v > bounds_ns_[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(uint64_t(v > 0 ? v : 0), std::memory_order_relaxed);
  }

  struct Snapshot {
    std::vector<double> bounds;     // seconds
    std::vector<uint64_t> buckets;  // per bucket (not cumulative), last = +Inf
    uint64_t count = 0;
    double sum_seconds = 0;
    // The q-quantile in seconds, interpolated inside its bucket (as Prometheus does).
    double quantile(double q) const;
  };
  Snapshot snapshot() const {
    Snapshot s;
    s.bounds = bounds_;
    s.buckets.resize(bounds_.size() + 1);
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      s.buckets[i] = counts_[i].load(std::memory_order_relaxed);
      s.count += s.buckets[i];
    }
    s.sum_seconds = double(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return s;
  }

 private:
  std::vector<double> bounds_;
  std::vector<Nanos> bounds_ns_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> sum_ns_{0};
};

inline double AtomicHistogram::Snapshot::quantile(double q) const {
  if (count == 0) return 0;
  double rank = q * double(count);
  uint64_t cum = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    uint64_t next = cum + buckets[i];
    if (double(next) >= rank && buckets[i] > 0) {
      double lo = i == 0 ? 0 : bounds[i - 1];
      if (i == bounds.size()) return bounds.empty() ? 0 : bounds.back();  // +Inf bucket
      double hi = bounds[i];
      return lo + (hi - lo) * (rank - double(cum)) / double(buckets[i]);
    }
    cum = next;
  }
  return bounds.empty() ? 0 : bounds.back();
}

}  // namespace helios
