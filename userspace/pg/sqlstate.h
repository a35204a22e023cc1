// SQLSTATE codes the proxy sends in ErrorResponse/NoticeResponse, named as in PostgreSQL's
// errcodes.txt (Appendix A of the PostgreSQL docs), and the severities it uses.
#pragma once

#include <string_view>

namespace helios::pg::sqlstate {

// Class 00/01 — success and warnings.
inline constexpr std::string_view kSuccessfulCompletion = "00000";
inline constexpr std::string_view kWarning = "01000";

// Class 08 — connection exception.
inline constexpr std::string_view kConnectionException = "08000";
inline constexpr std::string_view kConnectionDoesNotExist = "08003";
inline constexpr std::string_view kConnectionFailure = "08006";
inline constexpr std::string_view kSqlclientUnableToEstablishSqlconnection = "08001";
inline constexpr std::string_view kSqlserverRejectedEstablishmentOfSqlconnection = "08004";
inline constexpr std::string_view kProtocolViolation = "08P01";

// Class 0A — feature not supported.
inline constexpr std::string_view kFeatureNotSupported = "0A000";

// Class 22 — data exception.
inline constexpr std::string_view kInvalidParameterValue = "22023";

// Class 25 — invalid transaction state.
inline constexpr std::string_view kActiveSqlTransaction = "25001";
inline constexpr std::string_view kReadOnlySqlTransaction = "25006";
inline constexpr std::string_view kInFailedSqlTransaction = "25P02";
inline constexpr std::string_view kIdleInTransactionSessionTimeout = "25P03";

// Class 26 — invalid SQL statement name (unknown prepared statement).
inline constexpr std::string_view kInvalidSqlStatementName = "26000";

// Class 28 — invalid authorization specification.
inline constexpr std::string_view kInvalidAuthorizationSpecification = "28000";
inline constexpr std::string_view kInvalidPassword = "28P01";

// Class 34 — invalid cursor name (unknown portal).
inline constexpr std::string_view kInvalidCursorName = "34000";

// Class 3D — invalid catalog name (unknown database).
inline constexpr std::string_view kInvalidCatalogName = "3D000";

// Class 42 — syntax error or access rule violation.
inline constexpr std::string_view kSyntaxError = "42601";
inline constexpr std::string_view kInsufficientPrivilege = "42501";
inline constexpr std::string_view kUndefinedObject = "42704";
inline constexpr std::string_view kDuplicatePreparedStatement = "42P05";

// Class 53 — insufficient resources.
inline constexpr std::string_view kInsufficientResources = "53000";
inline constexpr std::string_view kOutOfMemory = "53200";
inline constexpr std::string_view kTooManyConnections = "53300";
inline constexpr std::string_view kConfigurationLimitExceeded = "53400";

// Class 54 — program limit exceeded.
inline constexpr std::string_view kProgramLimitExceeded = "54000";

// Class 55 — object not in prerequisite state.
inline constexpr std::string_view kObjectNotInPrerequisiteState = "55000";
inline constexpr std::string_view kCantChangeRuntimeParam = "55P02";

// Class 57 — operator intervention.
inline constexpr std::string_view kQueryCanceled = "57014";
inline constexpr std::string_view kAdminShutdown = "57P01";
inline constexpr std::string_view kCrashShutdown = "57P02";
inline constexpr std::string_view kCannotConnectNow = "57P03";
inline constexpr std::string_view kDatabaseDropped = "57P04";
inline constexpr std::string_view kIdleSessionTimeout = "57P05";

// Class 58 — system error (errors external to PostgreSQL itself).
inline constexpr std::string_view kSystemError = "58000";

// Class XX — internal error.
inline constexpr std::string_view kInternalError = "XX000";

// True for five characters of [0-9A-Z], the shape every SQLSTATE has.
constexpr bool is_well_formed(std::string_view code) {
  if (code.size() != 5) return false;
  for (char c : code) {
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'))) return false;
  }
  return true;
}

}  // namespace helios::pg::sqlstate

namespace helios::pg::severity {
// Severity words (the S and V fields). The proxy sends the non-localized form in both.
inline constexpr std::string_view kError = "ERROR";
inline constexpr std::string_view kFatal = "FATAL";
inline constexpr std::string_view kPanic = "PANIC";
inline constexpr std::string_view kWarning = "WARNING";
inline constexpr std::string_view kNotice = "NOTICE";
inline constexpr std::string_view kDebug = "DEBUG";
inline constexpr std::string_view kInfo = "INFO";
inline constexpr std::string_view kLog = "LOG";
}  // namespace helios::pg::severity
