// How many workers should be awake: "workers that follow the load" ([proxy] worker_scaling,
// docs/architecture.md "Workers that follow the load"). Pure arithmetic, no I/O: the control
// thread feeds it each worker's busy fraction once a period and publishes what it decides.
//
// Every worker costs wake-ups: two workers each serving half the clients sleep and wake twice as
// often as one serving them all, and each wake-up pays io_uring_enter, the scheduler and a cold
// cache. So the fewest workers that keep up are the cheapest, and a worker is added only when
// the awake ones are busy:
//   - up:   the awake workers' mean busy fraction is at least `busy_target` for `up_periods`
//           periods in a row -> one more (up to the `workers` ceiling);
//   - down: their summed busy fraction would keep one fewer worker under `down_fraction` x
//           `busy_target` each, for `down_periods` periods in a row -> one fewer (never below 1).
// The gap between the two marks and the longer wait to go down keep it from flapping.
#pragma once

#include <cstdint>
#include <span>

namespace helios::proxy {

struct LoadGovernorSettings {
  uint32_t max_workers = 1;    // the [proxy] workers ceiling
  double busy_target = 0.7;    // [proxy] worker_busy_target
  double down_fraction = 0.5;  // go down when one fewer would be at most this x busy_target
  uint32_t up_periods = 2;     // consecutive periods over the target before adding one
  uint32_t down_periods = 10;  // consecutive periods with room to spare before parking one
};

class LoadGovernor {
 public:
  explicit LoadGovernor(LoadGovernorSettings s);

  // One period's busy fraction (CPU time / wall time, 0..1) of every worker, index = worker id;
  // returns how many workers, from worker 0 up, should be awake now.
  uint32_t observe(std::span<const double> busy);

  uint32_t active() const { return active_; }
  void set_settings(LoadGovernorSettings s);  // a reload: the count is clamped to the ceiling

 private:
  LoadGovernorSettings s_;
  uint32_t active_ = 1;
  uint32_t over_ = 0;   // consecutive periods over the target
  uint32_t under_ = 0;  // consecutive periods with room for one fewer
};

}  // namespace helios::proxy
