// Startup parameters PostgreSQL accepts: a client may name a parameter it could SET (contexts
// user, superuser, backend), or a custom "prefix.name" one; any other name makes PostgreSQL
// refuse the connection (FATAL 42704 unrecognized configuration parameter, or 55P02 for a
// parameter fixed at server start or reload). The proxy refuses the same startups up front,
// instead of replaying them on every backend and logging each failure.
#pragma once

#include <string_view>

namespace helios::session {

enum class StartupParameterCheck { kOk, kUnknown, kFixed };

// `name` is lower-case.
StartupParameterCheck check_startup_parameter(std::string_view name);

}  // namespace helios::session
