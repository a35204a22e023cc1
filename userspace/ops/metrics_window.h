// How much a monotonic counter grew over a trailing window ("quota rejections in the last
// hour"), from samples taken at most once per step. Memory: window/step + 2 samples.
// Not thread-safe: the owner serializes calls (OpsServer holds a mutex).
#pragma once

#include <cstdint>
#include <deque>

#include "common/clock.h"

namespace helios::ops {

class CounterWindow {
 public:
  // `origin`: when the counter was 0 (process start). Until a whole window has passed since
  // then, the increase is the counter's value.
  CounterWindow(Nanos origin, Nanos window, Nanos step)
      : origin_(origin), window_(window), step_(step) {}

  // Records total at now if a step has passed since the last sample.
  void observe(Nanos now, uint64_t total) {
    if (!samples_.empty() && now - samples_.back().at < step_) return;
    samples_.push_back({now, total});
    // Keep the newest sample at or before now - window (the baseline) and everything after.
    while (samples_.size() >= 2 && samples_[1].at <= now - window_) samples_.pop_front();
  }

  // total minus the counter's value one window ago (the newest sample at or before then; if
  // none is that old, the oldest sample; 0 while the process is younger than the window).
  uint64_t increase(Nanos now, uint64_t total) const {
    Nanos since = now - window_;
    if (since < origin_ || samples_.empty()) return total;
    uint64_t base = samples_.front().total;
    for (const Sample& s : samples_) {
      if (s.at > since) break;
      base = s.total;
    }
    return total > base ? total - base : 0;
  }

  size_t samples() const { return samples_.size(); }

 private:
  struct Sample {
    Nanos at;
    uint64_t total;
  };
  Nanos origin_, window_, step_;
  std::deque<Sample> samples_;
};

}  // namespace helios::ops
