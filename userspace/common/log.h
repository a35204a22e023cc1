// Logging goes through spdlog's default logger, configured once in main() (level, pattern).
// Hot paths log only on state changes and errors, never per message.
#pragma once

#include <spdlog/spdlog.h>

namespace helios::log {
using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;
}  // namespace helios::log
