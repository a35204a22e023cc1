"""Differential random-session test (issue 13): PostgreSQL itself is the oracle for session state
in transaction pooling.

A seeded generator (random.Random(seed)) writes groups of two random client sessions: SET /
SET SESSION / SET LOCAL / RESET / set_config(name, value, false|true) of search_path,
statement_timeout, lock_timeout, work_mem, TimeZone, DateStyle, application_name and a custom
myapp.tenant; SET TIME ZONE 'name' | INTERVAL '+02:00' HOUR TO MINUTE | LOCAL | DEFAULT, RESET TIME
ZONE, RESET ALL; BEGIN / START TRANSACTION / COMMIT / END / ROLLBACK / COMMIT AND CHAIN / ROLLBACK
AND CHAIN; SAVEPOINT / RELEASE / ROLLBACK TO; SELECT 1/0 in and out of transactions; temp tables
as CREATE TEMP|TEMPORARY TABLE, CREATE TABLE pg_temp.x, SELECT ... INTO TEMP, ON COMMIT DROP,
CREATE TEMP VIEW, a view over a temp table, and DROPs; pg_advisory_lock / _unlock / _try_ /
_xact_lock / _unlock_all, also over generate_series(a, b); LISTEN / UNLISTEN [*]; PREPARE /
EXECUTE / DEALLOCATE [PREPARE] / DEALLOCATE ALL; protocol-level named statements (Parse, then
Bind/Execute, SQL EXECUTE and DEALLOCATE of them); DISCARD ALL. Statements go by the simple or
the extended protocol at random; a session may start with application_name and with
options=-c ... (so it has a session default other than the server's).

Each group is run twice with the same interleaving of its sessions: directly against
PostgreSQL, and through the proxy in transaction mode with a pool as small as the group (2
backends, shared by the two sessions and by fresh clients). After every step the client's view
is recorded:

  result        command tag and rows, or the SQLSTATE of the error; a step still running after
                4 s (longer than the proxy's 2 s acquire_timeout) is cancelled and shows HUNG
  tx            the transaction status of ReadyForQuery (idle / in transaction / failed)
  <parameter>   current_setting() of every parameter the generator uses
  ps:<name>     the last ParameterStatus the client received for TimeZone, DateStyle,
                application_name
  temp          relations in the client's temp schema (pg_my_temp_schema())
  my_locks      advisory lock keys held by the backend the client is on
  held_keys     (when a session ends, and at the end) advisory lock keys of this run held by
                anyone, i.e. that no other client could take: an observer connected directly
                to PostgreSQL reads pg_locks (after up to 3 s for the leaver's backend to let go)
  listen        pg_listening_channels()
  sql_prepared  names in pg_prepared_statements WHERE from_sql
Nothing is recorded inside a failed transaction but result, tx and ps:* (any query fails there).
When a session ends a fresh client looks around, and when the group ends one fresh client per
backend (each inside BEGIN, so that together they hold every backend of the pool) does: each
must see exactly what a fresh direct connection sees. The two transcripts must be equal. A
group with differences leaves a dirty proxy behind; it is replaced by a fresh one (started in
the background beforehand) so the next group is not blamed. A failure prints, per difference
class, the seed, the replayable group and the first differing observations.

Environment:
  HELIOS_DIFF_SESSIONS   number of random sessions (default 300, about a minute; 5000 for a full
                         run); two per group
  HELIOS_DIFF_BASE_SEED  first group seed (default 1); group i has seed BASE_SEED + i
  HELIOS_DIFF_SEED       replay one group only
  HELIOS_DIFF_SHRINK=1   minimise each newly found difference class to a short step sequence
  HELIOS_DIFF_MAX_CLASSES  stop after this many distinct difference classes (default 8)
  HELIOS_DIFF_MAX_FAILING  ... or after this many groups with differences (default 40)
  HELIOS_DIFF_IGNORE     comma list of observed fields not to compare (e.g.
                         application_name,ps:application_name), to look past a known bug
  HELIOS_DIFF_WITHOUT    comma list of generator rules (the names difference classes show, e.g.
                         DISCARD ALL,CREATE TABLE pg_temp.x; "options" for startup options) to
                         leave out of the generated sessions, to look past a known bug
  HELIOS_DIFF_VERBOSE=1  print both transcripts of every group run (with -s)
  HELIOS_DIFF_SELF_CHECK=1  run the second run directly too: the oracle must agree with itself

What is NOT compared, and why (each exclusion is as narrow as found necessary):
  - error messages: only the SQLSTATE is compared (the proxy words its own errors; and the
    server's message for the same condition may name a backend-local detail).
  - pg_backend_pid() and lock rows' pids: a pooled client moves between backends by design;
    advisory locks are compared as key sets (my_locks on the client's current backend,
    held_keys server-wide), never by pid.
  - pg_prepared_statements rows with from_sql = false: the proxy prepares a client's protocol
    statements on backends under its own names (hp_N) and lazily, so their rows legitimately
    differ; whether a protocol statement exists is compared by using it (protocol Execute, SQL
    EXECUTE, DEALLOCATE), whose results are compared.
  - current_setting('myapp.tenant', true): NULL and '' are taken as equal. A custom placeholder
    GUC, once SET on a backend, exists there as '' after RESET / DISCARD ALL, and nothing (not
    even DISCARD ALL) removes it, so a direct connection that never set it sees NULL where a
    pooled backend another client used sees ''. Any non-empty value is compared.
  - notices and warnings (e.g. pg_advisory_unlock of a lock not held) are not compared; their
    effect (the false result) is.
Advisory lock keys are unique per run (a counter), shown relative to the run's base, so a lock
left behind by one run can never block or show up in another.
"""

from __future__ import annotations

import itertools
import os
import random
import select
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import pq
from psycopg.conninfo import make_conninfo

from harness import BENCH_USER

SESSIONS = int(os.environ.get("HELIOS_DIFF_SESSIONS", "300"))
BASE_SEED = int(os.environ.get("HELIOS_DIFF_BASE_SEED", "1"))
ONE_SEED = os.environ.get("HELIOS_DIFF_SEED")
SHRINK = os.environ.get("HELIOS_DIFF_SHRINK") == "1"
MAX_CLASSES = int(os.environ.get("HELIOS_DIFF_MAX_CLASSES", "8"))
MAX_FAILING = int(os.environ.get("HELIOS_DIFF_MAX_FAILING", "40"))
IGNORE = {f for f in os.environ.get("HELIOS_DIFF_IGNORE", "").split(",") if f}
WITHOUT = {t for t in os.environ.get("HELIOS_DIFF_WITHOUT", "").split(",") if t}
SELF_CHECK = os.environ.get("HELIOS_DIFF_SELF_CHECK") == "1"
VERBOSE = os.environ.get("HELIOS_DIFF_VERBOSE") == "1"
PER_GROUP = 2  # sessions per group = backends in the proxy's pool
ACQUIRE_TIMEOUT = 2  # the proxy's acquire_timeout, seconds
STEP_TIMEOUT = 4.0  # > ACQUIRE_TIMEOUT: a step that hangs is cancelled and reported
SHRINK_BUDGET = 90.0  # seconds of shrinking per difference class
KEYS_PER_SESSION = 8
USER = BENCH_USER  # owns database bench; its SCRAM verifier is cheap (a run connects a lot)

# ---------------------------------------------------------------------------------------------
# Generator

# Parameter -> raw values (as set_config takes them).
PARAMS = {
    "search_path": ["public", "pg_catalog, public", '"$user", public', "nosuch, public"],
    "statement_timeout": ["0", "30s", "5min", "60000"],  # never fires: no statement sleeps
    "lock_timeout": ["0", "10s", "1min"],
    "work_mem": ["4MB", "8MB", "64MB", "1024kB"],
    "TimeZone": ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"],
    "DateStyle": ["ISO, MDY", "SQL, DMY", "German", "Postgres, YMD"],
    "application_name": ["app_x", "app_y", ""],
    "myapp.tenant": ["t1", "t2", ""],
}
STARTUP_OPTIONS = ["-c TimeZone=Asia/Tokyo", "-c DateStyle=SQL,DMY",
                   "-c statement_timeout=45s -c search_path=pg_catalog,public"]
TEMP_TABLES = ["tt1", "tt2", "tt3"]
CHANNELS = ["ch1", "ch2"]
SQL_STMTS = {"sp1": "SELECT $1::int + 1", "sp2": "SELECT set_config('myapp.tenant', 'prep', false)"}
PROTO_STMTS = {"pp1": "SELECT $1::int * 2", "pp2": "SET work_mem = '16MB'"}


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


@dataclass(frozen=True)
class Step:
    """One client action. op: 'q' simple query, 'x' extended query (unnamed statement),
    'P' protocol Parse of a named statement, 'E' protocol Bind/Execute of it. Advisory lock
    keys are written {k0}..{k4}; tag names the generator rule (difference classes use it)."""
    who: int
    op: str
    sql: str
    tag: str
    name: str = ""

    def __str__(self) -> str:
        what = {"q": "", "x": "[extended] ", "P": f"[Parse {self.name}] ",
                "E": f"[Execute {self.name}] "}[self.op]
        return f"{'AB'[self.who]}: {what}{self.sql}"


def _set_step(rng: random.Random) -> tuple[str, str]:
    name = rng.choice(list(PARAMS))
    value = rng.choice(PARAMS[name])
    rhs = value if name == "search_path" else _lit(value)
    form = rng.choice(["set", "set", "session", "local", "reset", "config", "config_local",
                       "bad"])
    if form == "set":
        return "SET", f"SET {name} {rng.choice(['=', 'TO'])} {rhs}"
    if form == "session":
        return "SET SESSION", f"SET SESSION {name} = {rhs}"
    if form == "local":
        return "SET LOCAL", f"SET LOCAL {name} = {rhs}"
    if form == "reset":
        return "RESET", f"RESET {name}"
    if form == "bad":
        return "SET invalid", "SET work_mem = '1kB'"  # below the minimum: 22023
    local = form == "config_local"
    return (f"set_config({'true' if local else 'false'})",
            f"SELECT set_config({_lit(name)}, {_lit(value)}, {'true' if local else 'false'})")


TZ_FORMS = [("SET TIME ZONE name", "SET TIME ZONE 'America/New_York'"),
            ("SET TIME ZONE INTERVAL", "SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE"),
            ("SET TIME ZONE LOCAL", "SET TIME ZONE LOCAL"),
            ("SET TIME ZONE DEFAULT", "SET TIME ZONE DEFAULT"),
            ("SET LOCAL TIME ZONE", "SET LOCAL TIME ZONE 'Asia/Kolkata'"),
            ("RESET TIME ZONE", "RESET TIME ZONE"),
            ("RESET ALL", "RESET ALL")]

SAVEPOINT_FORMS = [("SAVEPOINT", "SAVEPOINT {s}"),
                   ("RELEASE SAVEPOINT", "RELEASE SAVEPOINT {s}"),
                   ("ROLLBACK TO SAVEPOINT", "ROLLBACK TO SAVEPOINT {s}"),
                   ("ROLLBACK TO", "ROLLBACK TO {s}")]

TEMP_CREATE = [("CREATE TEMP TABLE", "CREATE TEMP TABLE {t} (a int)"),
               ("CREATE TEMPORARY TABLE", "CREATE TEMPORARY TABLE {t} (a int)"),
               ("CREATE TABLE pg_temp.x", "CREATE TABLE pg_temp.{t} (a int)"),
               ("SELECT INTO TEMP", "SELECT 1 AS a INTO TEMP {t}"),
               ("CREATE TEMP TABLE ON COMMIT DROP", "CREATE TEMP TABLE {t} (a int) ON COMMIT DROP"),
               ("CREATE TEMP VIEW", "CREATE TEMP VIEW tv1 AS SELECT 1 AS a"),
               ("CREATE VIEW on temp table", "CREATE VIEW tv2 AS SELECT a FROM {t}")]
TEMP_USE = [("INSERT temp", "INSERT INTO {t} VALUES (7)"),
            ("SELECT temp", "SELECT count(*) FROM {t}"),
            ("DROP TABLE", "DROP TABLE {t}"),
            ("DROP TABLE IF EXISTS CASCADE", "DROP TABLE IF EXISTS {t} CASCADE"),
            ("DROP VIEW", "DROP VIEW IF EXISTS tv1, tv2")]

LOCKS = [("pg_advisory_lock", "SELECT pg_advisory_lock({k})"),
         ("pg_advisory_unlock", "SELECT pg_advisory_unlock({k})"),
         ("pg_try_advisory_lock", "SELECT pg_try_advisory_lock({k})"),
         ("pg_advisory_xact_lock", "SELECT pg_advisory_xact_lock({k})"),
         ("multi-row pg_advisory_lock",
          "SELECT pg_advisory_lock(k) FROM generate_series({k0}, {k3}) k"),
         ("multi-row pg_advisory_unlock",
          "SELECT pg_advisory_unlock(k) FROM generate_series({k1}, {k2}) k"),
         ("pg_advisory_unlock_all", "SELECT pg_advisory_unlock_all()")]


def gen_session(rng: random.Random, who: int) -> list[Step]:
    steps: list[Step] = []
    in_tx = False
    proto_parsed: set[str] = set()
    savepoints: list[str] = []  # in the current transaction, as far as the generator knows
    for _ in range(rng.randint(4, 24)):
        kind = rng.choices(["set", "tz", "tx", "sp", "err", "temp", "lock", "listen", "prep",
                            "proto", "discard"],
                           [30, 8, 14 if not in_tx else 10, 18 if in_tx else 1, 6, 12, 12, 4, 6,
                            6, 2])[0]
        op = rng.choice("qqx")  # simple protocol twice as often as extended
        name = ""
        if kind == "set":
            tag, sql = _set_step(rng)
        elif kind == "tz":
            tag, sql = rng.choice(TZ_FORMS)
        elif kind == "tx":
            if not in_tx:
                tag, sql = rng.choice([("BEGIN", "BEGIN"), ("START TRANSACTION",
                                                            "START TRANSACTION")])
                in_tx = True
            else:
                tag = sql = rng.choice(["COMMIT", "ROLLBACK", "COMMIT AND CHAIN",
                                        "ROLLBACK AND CHAIN", "END"])
                in_tx, savepoints = "CHAIN" in sql, []
        elif kind == "sp":
            sp = rng.choice(["s1", "s2"])
            tag, sql = rng.choice(SAVEPOINT_FORMS)
            if tag != "SAVEPOINT" and savepoints and sp not in savepoints:
                sp = savepoints[-1]  # mostly name one that exists (else 3B001, also fine)
            if tag == "SAVEPOINT":
                savepoints.append(sp)
            elif tag == "RELEASE SAVEPOINT" and sp in savepoints:
                del savepoints[savepoints.index(sp):]
            sql = sql.format(s=sp)
        elif kind == "err":
            tag, sql = "error 1/0", "SELECT 1/0"
        elif kind == "temp":
            tag, sql = rng.choice(TEMP_CREATE if rng.random() < 0.55 else TEMP_USE)
            sql = sql.format(t=rng.choice(TEMP_TABLES))
        elif kind == "lock":
            tag, sql = rng.choice(LOCKS)
            sql = sql.replace("{k}", "{k%d}" % rng.randrange(5))
        elif kind == "listen":
            ch = rng.choice(CHANNELS)
            tag, sql = rng.choice([("LISTEN", f"LISTEN {ch}"), ("UNLISTEN", f"UNLISTEN {ch}"),
                                   ("UNLISTEN *", "UNLISTEN *")])
        elif kind == "prep":
            n = rng.choice(list(SQL_STMTS))
            tag, sql = rng.choice([("PREPARE", f"PREPARE {n} AS {SQL_STMTS[n]}"),
                                   ("EXECUTE", f"EXECUTE {n}" + ("(41)" if n == "sp1" else "")),
                                   ("DEALLOCATE", f"DEALLOCATE {n}"),
                                   ("DEALLOCATE PREPARE", f"DEALLOCATE PREPARE {n}"),
                                   ("DEALLOCATE ALL", "DEALLOCATE ALL")])
        elif kind == "proto":
            n = rng.choice(list(PROTO_STMTS))
            args = "(21)" if n == "pp1" else ""
            choice = rng.choice(["parse", "exec", "exec", "sql exec", "sql dealloc"])
            if choice == "parse" or (choice == "exec" and n not in proto_parsed):
                op, tag, sql, name = "P", "protocol Parse", PROTO_STMTS[n], n
                proto_parsed.add(n)
            elif choice == "exec":
                op, tag, sql, name = "E", "protocol Execute", PROTO_STMTS[n], n
            elif choice == "sql exec":
                tag, sql = "SQL EXECUTE of protocol statement", f"EXECUTE {n}{args}"
            else:
                tag, sql = "SQL DEALLOCATE of protocol statement", f"DEALLOCATE {n}"
        else:
            tag, sql = "DISCARD ALL", "DISCARD ALL"
        steps.append(Step(who, op, sql, tag, name))
    return steps


@dataclass
class Group:
    seed: int
    startup: list  # per session: startup parameters besides user/database (dict)
    schedule: list  # Steps of all sessions, interleaved

    def describe(self, upto: int | None = None) -> str:
        """The group, its steps up to `upto` (all by default)."""
        shown = self.schedule[:upto]
        lines = [f"group seed {self.seed}; startup parameters: "
                 + ", ".join(f"{'AB'[i]}={p}" for i, p in enumerate(self.startup))]
        lines += [f"  {i:3d} {s}" for i, s in enumerate(shown)]
        if len(shown) < len(self.schedule):
            lines.append(f"      ({len(self.schedule) - len(shown)} later steps not shown)")
        return "\n".join(lines)


def gen_group(seed: int) -> Group:
    rng = random.Random(seed)
    sessions = [gen_session(rng, who) for who in range(PER_GROUP)]
    startup = []
    for who in range(PER_GROUP):
        p = {}
        if rng.random() < 0.5:
            p["application_name"] = f"sess_{'ab'[who]}"
        if rng.random() < 0.25:  # a session default other than the server's
            p["options"] = rng.choice(STARTUP_OPTIONS)
        if "options" in WITHOUT:
            p.pop("options", None)
        startup.append(p)
    schedule = []
    while any(sessions):
        who = rng.choice([i for i, s in enumerate(sessions) if s])
        schedule.append(sessions[who].pop(0))
    schedule = [s for s in schedule if s.tag not in WITHOUT]
    return Group(seed, startup, schedule)


# ---------------------------------------------------------------------------------------------
# Runner

_TX = {pq.TransactionStatus.IDLE: "idle", pq.TransactionStatus.INTRANS: "in transaction",
       pq.TransactionStatus.INERROR: "failed transaction", pq.TransactionStatus.ACTIVE: "active",
       pq.TransactionStatus.UNKNOWN: "connection lost"}
_run_counter = itertools.count()


class ConnectionLost(Exception):
    pass


def _wait_results(conn: pq.PGconn, timeout: float = STEP_TIMEOUT) -> list:
    """Results of what was just sent; a step that takes longer than timeout is cancelled."""
    results, deadline, cancelled = [], time.monotonic() + timeout, False
    while True:
        conn.consume_input()
        while not conn.is_busy():
            r = conn.get_result()
            if r is None:
                return results
            results.append(r)
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([conn.socket], [], [], left)[0]:
            if cancelled or conn.status != pq.ConnStatus.OK:
                raise ConnectionLost("still running after a cancel")
            conn.get_cancel().cancel()
            cancelled, deadline = True, time.monotonic() + timeout
            results.append("HUNG (cancelled by the test)")


def _fmt(results: list) -> str:
    out = []
    for r in results:
        if isinstance(r, str):
            out.append(r)
        elif r.status == pq.ExecStatus.FATAL_ERROR:
            code = r.error_field(pq.DiagnosticField.SQLSTATE)
            msg = r.error_message.decode(errors="replace").strip()
            out.append(f"ERROR {code.decode()}" if code else f"ERROR (no SQLSTATE) {msg}")
        elif r.status == pq.ExecStatus.TUPLES_OK:
            rows = [tuple(None if r.get_value(i, j) is None else r.get_value(i, j).decode()
                          for j in range(r.nfields)) for i in range(r.ntuples)]
            out.append(f"{r.command_status.decode()} {rows}")
        else:
            out.append((r.command_status or b"").decode() or pq.ExecStatus(r.status).name)
    return "; ".join(out) or "(nothing)"


SNAPSHOT_SQL = ("SELECT " + ", ".join(f"current_setting({_lit(p)}, true)" for p in PARAMS) + """,
 (SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class
   WHERE relnamespace = pg_my_temp_schema() AND relkind IN ('r', 'v')),
 (SELECT string_agg((objid::int8 - {base})::text, ',' ORDER BY objid::int8) FROM pg_locks
   WHERE locktype = 'advisory' AND pid = pg_backend_pid()),
 (SELECT string_agg(c, ',' ORDER BY c) FROM pg_listening_channels() c),
 (SELECT string_agg(name, ',' ORDER BY name) FROM pg_prepared_statements WHERE from_sql)""")
SNAPSHOT_FIELDS = list(PARAMS) + ["temp", "my_locks", "listen", "sql_prepared"]
REPORTED = ["TimeZone", "DateStyle", "application_name"]


class Client:
    """A libpq connection driven message by message (no driver-side caching or retries)."""

    def __init__(self, conninfo: str, base: int):
        self.conn = pq.PGconn.connect(conninfo.encode())
        if self.conn.status != pq.ConnStatus.OK:
            raise AssertionError(f"connect failed: {self.conn.error_message.decode()}")
        self.base = base
        self.lost = ""  # why the connection is unusable, once it is

    def step(self, s: Step) -> str:
        if self.lost:
            return f"(connection lost: {self.lost})"
        try:
            return self._step(s)
        except (psycopg.OperationalError, ConnectionLost) as e:
            self.lost = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return f"(connection lost: {self.lost})"

    def _step(self, s: Step) -> str:
        keys = {f"k{i}": self.base + s.who * KEYS_PER_SESSION + i for i in range(5)}
        sql = s.sql.format(**keys).encode()
        if s.op == "q":
            self.conn.send_query(sql)
        elif s.op == "x":
            self.conn.send_query_params(sql, None)
        elif s.op == "P":
            self.conn.send_prepare(s.name.encode(), sql)
        else:
            self.conn.send_query_prepared(s.name.encode(), [b"21"] if "$1" in s.sql else None)
        return _fmt(_wait_results(self.conn))

    def state(self) -> dict:
        """What the client sees now (no snapshot query inside a failed transaction)."""
        if self.lost:
            return {"tx": "connection lost"}
        st = {"tx": _TX[self.conn.transaction_status]}
        for p in REPORTED:
            v = self.conn.parameter_status(p.encode())
            st[f"ps:{p}"] = v.decode() if v is not None else None
        if self.conn.transaction_status != pq.TransactionStatus.IDLE and \
                self.conn.transaction_status != pq.TransactionStatus.INTRANS:
            return st
        try:
            self.conn.send_query(SNAPSHOT_SQL.format(base=self.base).encode())
            res = _wait_results(self.conn)
        except (psycopg.OperationalError, ConnectionLost) as e:
            self.lost = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return {"tx": "connection lost"}
        if len(res) != 1 or isinstance(res[0], str) or res[0].status != pq.ExecStatus.TUPLES_OK:
            st["snapshot"] = _fmt(res)
            return st
        for i, f in enumerate(SNAPSHOT_FIELDS):
            v = res[0].get_value(0, i)
            st[f] = v.decode() if v is not None else None
        if st["myapp.tenant"] is None:  # see the module docstring: NULL == '' for a placeholder
            st["myapp.tenant"] = ""
        return st

    def close(self) -> None:
        self.conn.finish()


class Target:
    """Where a run connects: directly to PostgreSQL, or through the proxy."""

    def __init__(self, label: str, host: str, port: int, password: str):
        self.label, self.host, self.port, self.password = label, host, port, password

    def conninfo(self, startup: dict) -> str:
        kw = {"host": self.host, "port": self.port, "user": USER, "dbname": USER,
              "password": self.password, "connect_timeout": 10}
        kw.update(startup)
        return make_conninfo(**kw)


def _held_keys(observer, base: int, wait_free_of: range | None = None) -> str:
    """Advisory keys of this run held by anyone (relative to base). With wait_free_of, wait up to
    3 s for those relative keys to be released first (a closed connection's backend exits, or
    the proxy cleans it, asynchronously)."""
    sql = ("SELECT coalesce(string_agg((objid::int8 - %s)::text, ',' ORDER BY objid::int8), '')"
           " FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid::int8 BETWEEN %s"
           " AND %s")
    deadline = time.monotonic() + 3
    while True:
        top = base + PER_GROUP * KEYS_PER_SESSION
        held = observer.execute(sql, (base, base, top)).fetchone()[0]
        if wait_free_of is None or time.monotonic() > deadline or \
                not any(int(k) in wait_free_of for k in held.split(",") if k):
            return held
        time.sleep(0.01)


def run_group(group: Group, target: Target, observer) -> list[tuple[str, dict]]:
    """The transcript: (label, observations) per step, per ended session, and at the end."""
    base = 1_000_000 + next(_run_counter) * 100
    clients = {}
    left = [sum(1 for s in group.schedule if s.who == w) for w in range(PER_GROUP)]
    out = []
    try:
        for i, s in enumerate(group.schedule):
            if s.who not in clients:
                clients[s.who] = Client(target.conninfo(group.startup[s.who]), base)
            c = clients[s.who]
            obs = {"result": c.step(s)}
            obs.update(c.state())
            out.append((f"{i:3d} {s}", obs))
            left[s.who] -= 1
            if not left[s.who]:  # the session ends: it leaves, then a newcomer looks around
                clients.pop(s.who).close()
                mine = range(s.who * KEYS_PER_SESSION, (s.who + 1) * KEYS_PER_SESSION)
                fresh = Client(target.conninfo({}), base)
                obs = fresh.state()
                fresh.close()
                obs["held_keys"] = _held_keys(observer, base, wait_free_of=mine)
                out.append((f"    after {'AB'[s.who]} left: a fresh client", obs))
        # All gone: one fresh client per backend (each in a transaction, so they take them all).
        fresh = [Client(target.conninfo({}), base) for _ in range(PER_GROUP)]
        for n, f in enumerate(fresh):
            f.step(Step(0, "q", "BEGIN", "BEGIN"))
        for n, f in enumerate(fresh):
            out.append((f"    at the end: fresh client {n} (in BEGIN)", f.state()))
        for f in fresh:
            f.close()
        out.append(("    at the end: advisory keys held",
                    {"held_keys": _held_keys(observer, base, wait_free_of=range(0, 10**6))}))
    finally:
        for c in clients.values():
            c.close()
    return out


# ---------------------------------------------------------------------------------------------
# Comparator


@dataclass
class Difference:
    index: int  # into the transcript
    steps: int  # steps of the schedule run before this observation
    label: str
    field: str
    direct: object
    proxy: object


def compare(direct: list, proxied: list) -> list[Difference]:
    diffs, steps = [], 0
    for i, ((label, d), (_, p)) in enumerate(zip(direct, proxied)):
        if label.split()[0].isdigit():
            steps = int(label.split()[0]) + 1
        for k in sorted(set(d) | set(p), key=lambda k: (k != "result", k != "tx", k)):
            if k in IGNORE:
                continue
            if d.get(k, "(not observed)") != p.get(k, "(not observed)"):
                diffs.append(Difference(i, steps, label, k, d.get(k, "(not observed)"),
                                        p.get(k, "(not observed)")))
    if len(direct) != len(proxied):
        diffs.append(Difference(min(len(direct), len(proxied)), steps, "(transcript length)",
                                "length", len(direct), len(proxied)))
    return diffs


def first_class(group: Group, diffs: list[Difference]) -> tuple[str, str]:
    """A difference class: (generator rule of the step where the transcripts first differ,
    the first field that differs there). Later differences are mostly its consequences."""
    d = diffs[0]
    head = d.label.split()[0]
    tag = group.schedule[int(head)].tag if head.isdigit() else " ".join(d.label.split()[:4])
    return tag, d.field


def render(group: Group, direct: list, diffs: list[Difference], limit: int = 8) -> str:
    """The group up to its first difference, then the first `limit` differing observations."""
    lines = [group.describe(upto=diffs[0].steps), "",
             f"differences (first {min(limit, len(diffs))} of {len(diffs)}), direct vs proxy:"]
    shown_at = -1
    for d in diffs[:limit]:
        if d.index != shown_at:
            result = direct[d.index][1].get("result", "-")
            lines.append(f"  at {d.label}   [direct result: {result}]")
            shown_at = d.index
        lines.append(f"      {d.field}: direct={d.direct!r}  proxy={d.proxy!r}")
    lines.append(f"replay: HELIOS_DIFF_SEED={group.seed} [HELIOS_DIFF_SHRINK=1] pytest "
                 f"{os.path.relpath(__file__)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The test


class Rig:
    """The two targets, the observer, and a proxy. A spare proxy is started in the background
    so that replacing a dirty one (after a group with differences) costs no startup time."""

    def __init__(self, pg, proxy_factory):
        self.pg, self.factory = pg, proxy_factory
        self.observer = pg.admin_connect(USER)
        self.direct = Target("direct", pg.host, pg.port, pg.conninfo(USER)["password"])
        self.bg = ThreadPoolExecutor(max_workers=4)  # a dirty proxy may take 20 s to stop
        self.spare = self.bg.submit(self._start)
        self.proxy = None
        self.restart()

    def _start(self):
        return self.factory(mode="transaction", pool_size=PER_GROUP,
                            connection_pool={"acquire_timeout": f"{ACQUIRE_TIMEOUT}s"})

    def restart(self) -> None:
        """A fresh proxy: what one group left behind must not be blamed on the next."""
        if self.proxy is not None:
            self.bg.submit(self.proxy.stop, expect_exit=None)
        self.proxy, self.spare = self.spare.result(), self.bg.submit(self._start)
        self.via_proxy = Target("proxy", self.proxy.host, self.proxy.port,
                                self.pg.conninfo(USER)["password"])

    def close(self) -> None:
        """Stops the proxies here: one started on a pool thread gets SIGKILL (the harness sets
        PR_SET_PDEATHSIG) when that thread exits at shutdown."""
        try:
            for p in (self.proxy, self.spare.result()):
                if p is not None and p.returncode is None:
                    p.stop(expect_exit=0)
        finally:
            self.bg.shutdown(wait=True)
            self.observer.close()

    def check(self, group: Group):
        direct = run_group(group, self.direct, self.observer)
        proxied = run_group(group, self.direct if SELF_CHECK else self.via_proxy, self.observer)
        if VERBOSE:
            for (label, d), (_, p) in zip(direct, proxied):
                print(f"{label}\n   direct {d}\n   proxy  {p}")
        return direct, compare(direct, proxied)

    def shrink(self, group: Group, cls: tuple[str, str]) -> Group:
        """Removes chunks of steps (halves first, then smaller) while the group still first
        differs in the same class. A fresh proxy for every candidate run after a dirty one."""
        steps, chunk, dirty = list(group.schedule), max(1, len(group.schedule) // 2), False
        deadline = time.monotonic() + SHRINK_BUDGET
        while time.monotonic() < deadline:
            i, changed = len(steps) - chunk, False
            while i >= 0 and len(steps) > 1 and time.monotonic() < deadline:
                cand = Group(group.seed, group.startup, steps[:i] + steps[i + chunk:])
                if dirty:
                    self.restart()
                _, diffs = self.check(cand)
                dirty = bool(diffs)
                if diffs and first_class(cand, diffs) == cls:
                    steps, changed = cand.schedule, True
                i -= chunk
            if chunk == 1 and not changed:
                break
            chunk = max(1, chunk // 2) if not changed else chunk
        if dirty:
            self.restart()
        return Group(group.seed, group.startup, steps)


@pytest.mark.timeout(max(180, SESSIONS) + (MAX_CLASSES * 2 * SHRINK_BUDGET if SHRINK else 0))
def test_random_sessions_match_a_direct_connection(pg, proxy_factory):
    seeds = [int(ONE_SEED)] if ONE_SEED else \
        [BASE_SEED + i for i in range(max(1, SESSIONS // PER_GROUP))]
    rig = Rig(pg, proxy_factory)
    try:
        found, failing, elapsed = _run_seeds(rig, seeds)
    finally:
        rig.close()
    print(f"\n{len(seeds)} groups ({PER_GROUP} sessions each) from seed {seeds[0]} "
          f"in {elapsed:.1f}s; {failing} with differences; {len(found)} difference classes")
    assert not found, "\n".join(
        [f"{len(found)} difference classes between direct and proxied runs "
         f"(rule of the step where a group first differs / field: seed, first difference):"]
        + [f"  {t!r} / {f}: {summary}" for (t, f), (summary, _) in found.items()]
        + [f"\n=== {t!r} / {f} ===\n{report}" for (t, f), (_, report) in found.items()])


def _run_seeds(rig: Rig, seeds: list[int]):
    found: dict[tuple, tuple[str, str]] = {}  # difference class -> (summary, report)
    symptoms: set = set()
    failing = 0
    started = time.monotonic()
    for seed in seeds:
        group = gen_group(seed)
        direct, diffs = rig.check(group)
        if not diffs:
            continue
        failing += 1
        cls = first_class(group, diffs)
        d0 = diffs[0]
        same = (d0.field, repr(d0.direct), repr(d0.proxy))  # the same symptom, another rule
        if cls not in found and same not in symptoms:
            symptoms.add(same)
            if SHRINK:
                g = rig.shrink(group, cls)
                d, ds = rig.check(g)
                if ds:
                    group, direct, diffs = g, d, ds
            found[cls] = (f"seed {seed}, {d0.field}: direct={d0.direct!r} proxy={d0.proxy!r}",
                          render(group, direct, diffs))
            print(f"\n=== difference class {len(found)}: {cls[0]!r} / {cls[1]} ===\n"
                  f"{found[cls][1]}", flush=True)
        rig.restart()
        if len(found) >= MAX_CLASSES or failing >= MAX_FAILING:
            break
    return found, failing, time.monotonic() - started
