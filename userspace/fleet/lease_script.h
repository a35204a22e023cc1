// The Lua script one renewal runs in Redis, atomically (docs/fleet.md, "Keys").
//   ARGV: prefix, instance id, heartbeat ttl (ms), instance info, peer number held before (0:
//         none), highest peer number, item count, then per item:
//         key suffix, limit, used, want, whole units (1/0)
//   Reply: { {live instance ids...}, {slice per item, as text...}, peer number (text, 0: none
//          free), {info of each live instance, in the order of the ids} }
#pragma once

#include <string_view>

namespace helios::fleet {

std::string_view lease_script();

}  // namespace helios::fleet
