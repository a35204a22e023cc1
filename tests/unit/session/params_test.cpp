#include "session/params.h"

#include <doctest/doctest.h>

using namespace helios::session;

TEST_CASE("canonical_datestyle: as PostgreSQL reports DateStyle once set") {
  CHECK(canonical_datestyle("SQL,DMY", "ISO, MDY") == "SQL, DMY");
  CHECK(canonical_datestyle("sql, dmy", "ISO, MDY") == "SQL, DMY");
  CHECK(canonical_datestyle("German", "ISO, MDY") == "German, DMY");
  CHECK(canonical_datestyle("German, MDY", "ISO, MDY") == "German, MDY");
  CHECK(canonical_datestyle("YMD", "Postgres, DMY") == "Postgres, YMD");
  CHECK(canonical_datestyle("postgres", "ISO, MDY") == "Postgres, MDY");
  CHECK(canonical_datestyle("European", "ISO, MDY") == "ISO, DMY");
  CHECK_FALSE(canonical_datestyle("bogus", "ISO, MDY").has_value());
}

TEST_CASE("startup_restore_sql: every settable startup parameter, values unmarked") {
  ParamSet none({});
  CHECK(startup_restore_sql(nullptr).empty());
  CHECK(startup_restore_sql(&none).empty());
  ParamSet only_unsettable({{"fallback_application_name", config_value("pgbench")}});
  CHECK(startup_restore_sql(&only_unsettable).empty());
  ParamSet some({{"application_name", config_value("sess_a")},
                 {"search_path", config_value("pg_catalog,public")}});
  std::string sql = startup_restore_sql(&some);
  CHECK(sql.find("(E'application_name', E'sess_a')") != std::string::npos);
  CHECK(sql.find("(E'search_path', E'pg_catalog,public')") != std::string::npos);
  CHECK(sql.find("s.source <> 'session'") != std::string::npos);
  CHECK(sql.find('\x02') == std::string::npos);
}
