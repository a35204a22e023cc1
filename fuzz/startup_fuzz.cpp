// The startup packet parser on arbitrary bytes: never crashes, and what it accepts obeys its
// rules (protocol 3, a non-empty user, no empty or repeated names).
#include <cstdint>
#include <set>
#include <span>
#include <string>

#include "pg/startup.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  (void)helios::pg::peek_startup_header(in);
  auto p = helios::pg::parse_startup_packet(in);
  if (p && p->kind == helios::pg::StartupKind::Startup) {
    if (p->major != 3 || p->user.empty() || p->database.empty()) __builtin_trap();
    std::set<std::string> seen;
    for (const auto& [k, v] : p->parameters)
      if (k.empty() || !seen.insert(k).second) __builtin_trap();
  }
  return 0;
}
