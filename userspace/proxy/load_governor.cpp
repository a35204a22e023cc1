#include "proxy/load_governor.h"

#include <algorithm>

namespace helios::proxy {

LoadGovernor::LoadGovernor(LoadGovernorSettings s) {
  set_settings(s);
}

void LoadGovernor::set_settings(LoadGovernorSettings s) {
  s.max_workers = std::max<uint32_t>(s.max_workers, 1);
  s_ = s;
  active_ = std::clamp<uint32_t>(active_, 1, s_.max_workers);
  over_ = under_ = 0;
}

uint32_t LoadGovernor::observe(std::span<const double> busy) {
  uint32_t n = std::min<uint32_t>(active_, uint32_t(busy.size()));
  if (n == 0) return active_;
  double sum = 0;
  for (uint32_t i = 0; i < n; ++i) sum += std::clamp(busy[i], 0.0, 1.0);
  bool over = sum / n >= s_.busy_target;
  bool room = n > 1 && sum <= s_.down_fraction * s_.busy_target * (n - 1);
  over_ = over ? over_ + 1 : 0;
  under_ = room ? under_ + 1 : 0;
  if (over_ >= s_.up_periods && active_ < s_.max_workers) {
    ++active_;
    over_ = under_ = 0;
  } else if (under_ >= s_.down_periods && active_ > 1) {
    --active_;
    over_ = under_ = 0;
  }
  return active_;
}

}  // namespace helios::proxy
