#include "proxy/fleet_admission.h"

namespace helios::proxy {

void FleetAdmission::add(const Waiter& w) {
  std::lock_guard lock(mu_);
  waiters_.push_back(w);
}

void FleetAdmission::drain(const tenant::FleetCaps& caps, Nanos now,
                           const std::function<void(const Waiter&, bool admitted)>& done) {
  std::vector<std::pair<Waiter, bool>> finished;
  {
    std::lock_guard lock(mu_);
    std::vector<Waiter> still;
    for (const Waiter& w : waiters_) {
      if (w.tenant->try_admit_connection(/*count_refusal=*/false,
                                         caps.connections(w.tenant->index())))
        finished.emplace_back(w, true);
      else if (now >= w.deadline)
        finished.emplace_back(w, false);
      else
        still.push_back(w);
    }
    waiters_ = std::move(still);
  }
  for (const auto& [w, admitted] : finished) done(w, admitted);
}

}  // namespace helios::proxy
