#include "fleet/slice.h"

#include <algorithm>
#include <cmath>

namespace helios::fleet {

double grant_slice(const SliceInput& in) {
  const double live = std::max<uint32_t>(1, in.live);
  const double mine = std::max(in.used, in.want);
  const double total = mine + in.others_demand;
  double target;
  if (total <= in.limit) {
    const double free = in.limit - total;
    double part = free / live;
    if (in.whole_units) {
      part = std::floor(part);
      if (double(in.rank) < free - part * live) part += 1;  // the remainder, one unit each
    }
    target = mine + part;
  } else {
    double fair = in.limit * mine / total;
    const bool my_turn = in.used == 0 && !in.other_waited_longer;
    target = !in.whole_units ? fair : my_turn ? std::ceil(fair) : std::floor(fair);
  }
  double room = std::max(0.0, in.limit - in.others_held);
  double slice = std::min(target, room);
  return in.whole_units ? std::floor(slice) : slice;
}

double static_share(double limit, uint32_t live, bool whole_units) {
  double share = limit / std::max<uint32_t>(1, live);
  return whole_units ? std::floor(share) : share;
}

}  // namespace helios::fleet
