// Durations in the config: "250ms", "5s", "10m", "1h", "1h30m", "1.5s", or plain integer seconds
// (handled by the config reader). Stored as helios::Nanos.
#pragma once

#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"

namespace helios::config {

// Parses a duration string: one or more <number><unit> groups, number a non-negative decimal
// (fraction allowed), unit one of ns, us, ms, s, m, h, d. "0" alone is zero. Whitespace is not
// allowed inside. Errors say what is wrong ("missing unit after 5", "unknown unit "sec"").
Result<Nanos> parse_duration(std::string_view text);

// Formats a duration compactly in the same syntax: 0 -> "0s", 90s -> "1m30s", 1.5ms -> "1500us".
std::string format_duration(Nanos d);

}  // namespace helios::config
