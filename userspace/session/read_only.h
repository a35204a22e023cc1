// Read-only classification for the read/write split: can the proxy PROVE that a statement (or a
// batch of client messages) only reads, so that a hot-standby replica may run it? Pure functions,
// no I/O. Anything not proven goes to the primary.
//
// "Proven" here means, per statement (lexed by SqlLexer: literals, quoted identifiers and
// comments cannot fool it):
//   - it starts with SELECT, VALUES, TABLE, or WITH (then no INSERT/UPDATE/DELETE/MERGE word
//     anywhere in it), and
//   - it has no INTO (SELECT INTO creates a table), no FOR UPDATE/SHARE/NO KEY/KEY (row locks
//     are refused on a standby), and
//   - every "name(" it contains is a SQL keyword or one of a fixed list of built-in functions
//     that do not write (count, lower, now, coalesce, ...; kReadOnlyFunctions in the .cpp). Any
//     other function (nextval, setval, pg_advisory_lock, a user function, a quoted name) may write
//     or take a lock: not proven.
//   - BEGIN / START TRANSACTION with READ ONLY (and not SERIALIZABLE, which a standby refuses)
//     opens a read-only transaction: its whole transaction may run on a replica.
// Not caught (documented in docs/configuration.md [routing]): a view, rule or operator whose
// function writes. A replica refuses such a write with SQLSTATE 25006, which reaches the client.
//
// The comment hint /* helios:primary */ (anywhere in the text) forces the primary.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace helios::session {

enum class ReadClass : uint8_t {
  kPrimary,        // may write, or cannot be classified: the primary
  kReadOnly,       // provably read-only statements: a replica may answer them
  kReadOnlyBegin,  // BEGIN READ ONLY (possibly followed by read-only statements)
};

// One simple Query's text (one or more statements).
ReadClass classify_sql(std::string_view sql);

// The query text of a statement prepared earlier, by its name on the backend ("" = unnamed).
using StatementText = std::function<std::optional<std::string_view>(std::string_view name)>;

// A batch of complete client messages (type byte, int32 length, body), as queued for a lease.
// Replica-safe only if every Query/Parse in it is, every Bind/Describe names a statement parsed
// in the batch or known to `lookup`, it holds only Q/P/B/D/E/C/H/S messages, and it ends with
// a Sync or a Query (a half-sent extended batch is not classified).
ReadClass classify_batch(std::string_view bytes, const StatementText& lookup);

const char* to_string(ReadClass c);

}  // namespace helios::session
