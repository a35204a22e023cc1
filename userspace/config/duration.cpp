#include "config/duration.h"

#include <cstdint>
#include <limits>

namespace helios::config {
namespace {

struct Unit {
  std::string_view name;
  Nanos nanos;
};

// Longest names first so that "ms" is not read as "m" followed by garbage.
constexpr Unit kUnits[] = {
    {"ns", 1},
    {"us", kNanosPerMicro},
    {"ms", kNanosPerMilli},
    {"s", kNanosPerSec},
    {"m", 60 * kNanosPerSec},
    {"h", 3600 * kNanosPerSec},
    {"d", 86400 * kNanosPerSec},
};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

}  // namespace

Result<Nanos> parse_duration(std::string_view text) {
  if (text.empty()) return Error::invalid("empty duration");
  if (text == "0") return Nanos{0};
  __int128 total = 0;
  size_t i = 0;
  while (i < text.size()) {
    const size_t num_start = i;
    __int128 whole = 0;
    while (i < text.size() && is_digit(text[i])) {
      whole = whole * 10 + (text[i] - '0');
      if (whole > std::numeric_limits<int64_t>::max()) return Error::invalid("duration too large");
      ++i;
    }
    __int128 frac = 0, frac_scale = 1;
    const bool had_whole = i > num_start;
    bool had_frac = false;
    if (i < text.size() && text[i] == '.') {
      ++i;
      while (i < text.size() && is_digit(text[i])) {
        if (frac_scale < 1000000000000000000LL) {  // ignore digits beyond 1e-18
          frac = frac * 10 + (text[i] - '0');
          frac_scale *= 10;
        }
        had_frac = true;
        ++i;
      }
    }
    if (!had_whole && !had_frac) {
      return Error::invalid("expected a number at \"" + std::string(text.substr(num_start)) + "\"");
    }
    const size_t unit_start = i;
    while (i < text.size() && is_alpha(text[i])) ++i;
    const std::string_view unit_name = text.substr(unit_start, i - unit_start);
    const std::string_view number = text.substr(num_start, unit_start - num_start);
    if (unit_name.empty()) {
      return Error::invalid("missing unit after " + std::string(number) +
                            " (use ns, us, ms, s, m, h or d)");
    }
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (u.name == unit_name) unit = &u;
    }
    if (unit == nullptr) {
      return Error::invalid("unknown unit \"" + std::string(unit_name) +
                            "\" (use ns, us, ms, s, m, h or d)");
    }
    total += whole * unit->nanos + frac * unit->nanos / frac_scale;
    if (total > std::numeric_limits<int64_t>::max()) return Error::invalid("duration too large");
  }
  return static_cast<Nanos>(total);
}

std::string format_duration(Nanos d) {
  if (d == 0) return "0s";
  std::string out;
  if (d < 0) {
    out = "-";
    d = -d;
  }
  // Values that are not whole seconds print in the largest unit that is exact.
  if (d % kNanosPerSec != 0) {
    if (d % kNanosPerMilli == 0) return out + std::to_string(d / kNanosPerMilli) + "ms";
    if (d % kNanosPerMicro == 0) return out + std::to_string(d / kNanosPerMicro) + "us";
    return out + std::to_string(d) + "ns";
  }
  Nanos secs = d / kNanosPerSec;
  const Nanos hours = secs / 3600;
  secs %= 3600;
  const Nanos minutes = secs / 60;
  secs %= 60;
  if (hours) out += std::to_string(hours) + "h";
  if (minutes) out += std::to_string(minutes) + "m";
  if (secs) out += std::to_string(secs) + "s";
  return out;
}

}  // namespace helios::config
