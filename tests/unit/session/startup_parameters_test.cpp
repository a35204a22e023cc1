#include <doctest/doctest.h>

#include "session/startup_parameters.h"

using namespace helios::session;

TEST_CASE("check_startup_parameter: what PostgreSQL accepts at startup") {
  for (auto n : {"application_name", "search_path", "datestyle", "timezone", "client_encoding",
                 "statement_timeout", "role", "work_mem", "transaction_timeout"})
    CHECK_MESSAGE(check_startup_parameter(n) == StartupParameterCheck::kOk, n);
  for (auto n : {"myext.flag", "pg_stat_statements.track", "a.b.c"})
    CHECK_MESSAGE(check_startup_parameter(n) == StartupParameterCheck::kOk, n);
  for (auto n : {"shared_buffers", "max_connections", "port", "ssl", "server_version"})
    CHECK_MESSAGE(check_startup_parameter(n) == StartupParameterCheck::kFixed, n);
  for (auto n : {"p0", "foo", "", ".x", "x.", "a b.c", "search_pathx"})
    CHECK_MESSAGE(check_startup_parameter(n) == StartupParameterCheck::kUnknown, n);
}
