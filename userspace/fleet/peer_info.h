// What an instance publishes in its membership record for cancel forwarding, and reading it back
// (docs/fleet.md, "Cancels"): "... cancel=<ip>:<port> peer=<n>" among the other fields.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "config/config.h"
#include "fleet/cancel_forwarder.h"

namespace helios::fleet {

// A numeric "1.2.3.4:5" or "[::1]:5" into a socket address (no name lookup).
bool parse_numeric_address(std::string_view text, PeerAddress& out);

// The peer number and cancel address in a membership record; nullopt when it has neither
// (an instance without a number yet, or one that does not publish an address).
std::optional<PeerAddress> parse_member_info(std::string_view info);

// This instance's cancel address as others can reach it: the host as given, or this host's name
// when it is a wildcard ("0.0.0.0", "::", ""), resolved to a numeric address. Blocking (name
// lookup): called on the fleet agent's thread only.
Result<std::string> resolve_cancel_address(const config::HostPort& where);

}  // namespace helios::fleet
