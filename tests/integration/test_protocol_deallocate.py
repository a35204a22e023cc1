"""SQL DEALLOCATE and EXECUTE of statements a client prepared with the protocol (Parse), in
transaction pooling with prepared_statement_mode = "track". The proxy prepares those statements
on its backends under its own names, so SQL naming them by the client's name must be mapped.
Drivers do this on their own: PHP PDO and DBD::Pg send DEALLOCATE for every statement handle
they free (a handle freed before commit() used to abort the transaction: commit() returned true
and the rows were gone), psycopg 3 after 100 prepared statements, pgx v4 after 512.

Each sequence also runs directly against PostgreSQL: the proxy must answer the same."""

from __future__ import annotations

import asyncio
import struct

import asyncpg
import psycopg
import pytest

from harness import APP_USER, ROLES
from harness.wire import RawConn, data_row_values, message, query_message

INT4 = 23


def _parse(name: bytes, sql: bytes, *types: int) -> bytes:
    return message(b"P", name + b"\0" + sql + b"\0" + struct.pack("!h", len(types))
                   + b"".join(struct.pack("!I", t) for t in types))


def _bind(stmt: bytes, *text_params: bytes) -> bytes:
    body = b"\0" + stmt + b"\0" + struct.pack("!h", 0) + struct.pack("!h", len(text_params))
    for v in text_params:
        body += struct.pack("!i", len(v)) + v
    return message(b"B", body + struct.pack("!h", 0))


EXECUTE = message(b"E", b"\0" + struct.pack("!i", 0))
SYNC = message(b"S")


def _summary(msgs: list) -> list:
    """Kinds, with the SQLSTATE of errors, the tag of CommandComplete, the status of Z and the
    values of data rows: comparable between the proxy and PostgreSQL."""
    out = []
    for m in msgs:
        if m.kind == b"E":
            out.append(("E", m.sqlstate))
        elif m.kind == b"C":
            out.append(("C", m.payload.rstrip(b"\0").decode()))
        elif m.kind == b"Z":
            out.append(("Z", m.payload.decode()))
        elif m.kind == b"D":
            row = data_row_values(m.payload)
            out.append(("D", tuple(row)))
        elif m.kind in (b"N", b"S"):
            continue  # notices and parameter reports may differ; not the point here
        else:
            out.append((m.kind.decode(),))
    return out


def _login(host: str, port: int) -> RawConn:
    raw = RawConn(host, port)
    raw.login(APP_USER, ROLES[APP_USER].password, "app")
    return raw


def _requests(step: bytes) -> int:
    """Messages in `step` that end in a ReadyForQuery (Query, Sync)."""
    n, pos = 0, 0
    while pos < len(step):
        (length,) = struct.unpack("!I", step[pos + 1:pos + 5])
        n += step[pos:pos + 1] in (b"Q", b"S")
        pos += 1 + length
    return n


def _run(raw: RawConn, steps: list) -> list:
    """Sends each step (in one write) and collects its replies, up to its last ReadyForQuery."""
    out = []
    for step in steps:
        raw.send(step)
        got = []
        for _ in range(_requests(step)):
            got += _summary(raw.read_until_ready())
        out.append(got)
    return out


def _both(pg, proxy, steps: list):
    with _login(pg.host, pg.port) as direct:
        want = _run(direct, steps)
    with _login("127.0.0.1", proxy.port) as raw:
        got = _run(raw, steps)
    assert got == want, f"\nproxy:  {got}\ndirect: {want}"
    return got


@pytest.fixture
def rows_table(pg):
    pg.query("DROP TABLE IF EXISTS pd_rows; CREATE TABLE pd_rows (id int, src text);"
             "GRANT ALL ON pd_rows TO PUBLIC", dbname="app")
    yield "pd_rows"
    pg.query("DROP TABLE IF EXISTS pd_rows", dbname="app")


def _count(pg, src: str) -> int:
    return pg.query("SELECT count(*) FROM pd_rows WHERE src = %s", (src,), dbname="app")[0][0]


def test_pdo_style_deallocate_inside_a_transaction_keeps_the_rows(proxy_factory, pg, rows_table):
    """BEGIN; a statement prepared and run by protocol; its handle freed (SQL DEALLOCATE); more
    statements; COMMIT: the transaction must not be aborted, the rows must be stored."""
    p = proxy_factory(pool_size=2)
    for where, port, host in (("direct", pg.port, pg.host), ("proxy", p.port, "127.0.0.1")):
        with _login(host, port) as raw:
            steps = [
                query_message("BEGIN"),
                _parse(b"pdo_stmt_00000001", f"INSERT INTO pd_rows VALUES (1, '{where}')".encode())
                + _bind(b"pdo_stmt_00000001") + EXECUTE + SYNC,
                query_message("DEALLOCATE pdo_stmt_00000001"),
                query_message(f"INSERT INTO pd_rows VALUES (2, '{where}')"),
                query_message("SELECT 2"),
                query_message("COMMIT"),
            ]
            got = _run(raw, steps)
            assert got[2] == [("C", "DEALLOCATE"), ("Z", "T")], (where, got)
            assert got[4] == [("T",), ("D", ("2",)), ("C", "SELECT 1"), ("Z", "T")], (where, got)
            assert got[5] == [("C", "COMMIT"), ("Z", "I")], (where, got)
        assert _count(pg, where) == 2, where
    # The exact sequence of the issue, compared message by message.
    _both(pg, p, [query_message("BEGIN"),
                  _parse(b"s1", b"SELECT 1") + _bind(b"s1") + EXECUTE + SYNC,
                  query_message("DEALLOCATE s1; SELECT 2"),
                  query_message("COMMIT")])


def test_dbd_pg_style_with_psycopg_prepared_statement(proxy_factory, pg, rows_table):
    """A real driver prepares by protocol (psycopg, prepare=True, named _pg3_0), then the
    application deallocates by SQL inside the transaction, as DBD::Pg does for a freed handle."""
    p = proxy_factory(pool_size=2)
    for where, kwargs in (("direct", pg.conninfo(APP_USER, "app")),
                          ("proxy", p.conninfo(APP_USER, "app").kwargs())):
        with psycopg.connect(**kwargs) as conn:  # not autocommit: psycopg opens a transaction
            with conn.cursor() as cur:
                cur.execute("INSERT INTO pd_rows VALUES (%s, %s)", (1, where), prepare=True)
                names = [r[0] for r in cur.execute("SELECT name FROM pg_prepared_statements")]
                assert names, where
                # psycopg names its statements _pg3_<n>; the first one is the INSERT.
                cur.execute("DEALLOCATE _pg3_0")
                cur.execute("INSERT INTO pd_rows VALUES (2, %s)", (where,))
            conn.commit()
        assert _count(pg, where) == 2, where


def test_asyncpg_statement_deallocated_by_sql_in_a_transaction(proxy_factory, pg, rows_table):
    """asyncpg prepares by protocol (__asyncpg_stmt_<n>__); the application deallocates it by
    SQL (a simple Query) inside the transaction and goes on."""
    p = proxy_factory(pool_size=2)

    async def run(where: str, host: str, port: int) -> None:
        conn = await asyncpg.connect(host=host, port=port, user=APP_USER, database="app",
                                     password=ROLES[APP_USER].password,
                                     statement_cache_size=0)
        try:
            async with conn.transaction():
                stmt = await conn.prepare("INSERT INTO pd_rows VALUES ($1, $2)")
                await stmt.fetchval(1, where)
                assert await conn.fetchval(
                    "SELECT count(*) FROM pd_rows WHERE src = $1", where) == 1
                assert await conn.execute(f'DEALLOCATE "{stmt.get_name()}"') == "DEALLOCATE"
                await conn.execute(f"INSERT INTO pd_rows VALUES (2, '{where}')")
        finally:
            await conn.close()

    asyncio.run(run("direct", pg.host, pg.port))
    asyncio.run(run("proxy", "127.0.0.1", p.port))
    assert _count(pg, "direct") == 2
    assert _count(pg, "proxy") == 2


def test_deallocate_prepare_name(proxy_factory, pg):
    p = proxy_factory(pool_size=2)
    got = _both(pg, p, [
        _parse(b"s1", b"SELECT $1::int * 2", INT4) + _bind(b"s1", b"21") + EXECUTE + SYNC,
        query_message("BEGIN"),
        query_message("DEALLOCATE PREPARE s1"),
        _bind(b"s1", b"1") + EXECUTE + SYNC,  # gone: 26000, the transaction is aborted
        query_message("ROLLBACK"),
        query_message("deallocate prepare S1"),  # gone outside a transaction too
    ])
    assert got[2] == [("C", "DEALLOCATE"), ("Z", "T")]
    assert got[3] == [("E", "26000"), ("Z", "E")]
    assert got[5] == [("E", "26000"), ("Z", "I")]


def test_deallocate_all_then_parse_the_same_name_again(proxy_factory, pg):
    p = proxy_factory(pool_size=2)
    got = _both(pg, p, [
        _parse(b"s1", b"SELECT 1") + _parse(b"s2", b"SELECT 2") + _bind(b"s1") + EXECUTE + SYNC,
        query_message("BEGIN"),
        query_message("DEALLOCATE ALL"),
        _parse(b"s1", b"SELECT 11") + _bind(b"s1") + EXECUTE + SYNC,
        query_message("COMMIT"),
        _bind(b"s1") + EXECUTE + SYNC,
        _bind(b"s2") + EXECUTE + SYNC,  # gone with DEALLOCATE ALL
        query_message("PREPARE q AS SELECT 3"),  # an SQL-level one (it pins the client)
        query_message("DEALLOCATE ALL"),  # outside a transaction: both kinds go
        query_message("EXECUTE q"),
        _bind(b"s1") + EXECUTE + SYNC,
        _parse(b"s2", b"SELECT 22") + _bind(b"s2") + EXECUTE + SYNC,
    ])
    assert got[3] == [("1",), ("2",), ("D", ("11",)), ("C", "SELECT 1"), ("Z", "T")]
    assert got[5][1] == ("D", ("11",))
    assert got[6] == [("E", "26000"), ("Z", "I")]
    assert got[8] == [("C", "DEALLOCATE ALL"), ("Z", "I")]
    assert got[9] == [("E", "26000"), ("Z", "I")]
    assert got[10] == [("E", "26000"), ("Z", "I")]
    assert got[11][2] == ("D", ("22",))


def test_execute_of_a_protocol_prepared_statement(proxy_factory, pg):
    """EXECUTE name (args) of a statement prepared by Parse, with the backend holding it or not
    (another client's DEALLOCATE ALL on the single backend drops it there), in and out of
    transactions, and in a transaction that already failed."""
    p = proxy_factory(pool_size=1)
    steps = [
        _parse(b"s1", b"SELECT $1::int + 1", INT4) + SYNC,
        query_message("EXECUTE s1(41)"),  # prepared where the lease lands, then executed
        query_message("BEGIN; EXECUTE s1 (1); EXECUTE \"s1\"(2); COMMIT"),
        query_message("BEGIN"),
        query_message("SELECT 1/0"),
        query_message("EXECUTE s1(4)"),  # the transaction is aborted: 25P02, s1 stays
        # In one write: the proxy prepares s1 before it knows the transaction failed.
        query_message("SELECT 1/0") + query_message("EXECUTE s1(4)"),
        query_message("DEALLOCATE s1"),  # refused (25P02): s1 stays prepared
        query_message("ROLLBACK"),
        query_message("BEGIN"),
        query_message("EXECUTE s1(3)"),  # inside a transaction, the backend lacking it
        query_message("COMMIT"),
        query_message("EXPLAIN (COSTS off) EXECUTE s1(5)"),
        query_message("EXECUTE s1(6); DEALLOCATE s1; EXECUTE s1(7)"),  # 26000 at the last one
        query_message("EXECUTE nope"),
    ]
    with _login(pg.host, pg.port) as direct:
        want = _run(direct, steps)
    other = _login("127.0.0.1", p.port)
    with _login("127.0.0.1", p.port) as raw:
        got = []
        for i, step in enumerate(steps):
            if i in (1, 2, 3, 9, 12, 13):  # raw is idle: the only backend forgets its statements
                assert other.simple_query("DEALLOCATE ALL")[1] == []
            got += _run(raw, [step])
    other.close()
    assert got == want, f"\nproxy:  {got}\ndirect: {want}"
    assert got[1] == [("T",), ("D", ("42",)), ("C", "SELECT 1"), ("Z", "I")]
    assert got[5] == [("E", "25P02"), ("Z", "E")]
    assert got[6] == [("E", "25P02"), ("Z", "E"), ("E", "25P02"), ("Z", "E")]
    assert got[7] == [("E", "25P02"), ("Z", "E")]
    assert got[10] == [("T",), ("D", ("4",)), ("C", "SELECT 1"), ("Z", "T")]
    assert got[13][-2:] == [("E", "26000"), ("Z", "I")]


def test_deallocate_of_an_unknown_name_fails_as_directly(proxy_factory, pg):
    p = proxy_factory(pool_size=2)
    got = _both(pg, p, [
        _parse(b"s1", b"SELECT 1") + SYNC,
        query_message("DEALLOCATE nope"),
        query_message("BEGIN"),
        query_message("DEALLOCATE nope"),
        query_message("SELECT 1"),
        query_message("ROLLBACK"),
        query_message("DEALLOCATE s1; DEALLOCATE s1"),  # the second one: 26000
        query_message("PREPARE q AS SELECT 5; EXECUTE q; DEALLOCATE q; DEALLOCATE q"),
    ])
    assert got[1] == [("E", "26000"), ("Z", "I")]
    assert got[3] == [("E", "26000"), ("Z", "E")]
    assert got[4] == [("E", "25P02"), ("Z", "E")]
    assert got[6] == [("C", "DEALLOCATE"), ("E", "26000"), ("Z", "I")]
    with _login("127.0.0.1", p.port) as raw:
        raw.send(query_message("DEALLOCATE nope"))
        err = [m for m in raw.read_until_ready() if m.kind == b"E"][0]
        assert err.fields()["M"] == 'prepared statement "nope" does not exist'


@pytest.mark.timeout(120)
def test_psycopg_more_than_100_prepared_statements(proxy_factory, pg):
    """psycopg 3 keeps at most 100 prepared statements and deallocates the oldest by SQL
    DEALLOCATE (sent with the extended protocol) as it prepares more."""
    p = proxy_factory(pool_size=3)
    for kwargs in (pg.conninfo(APP_USER, "app"), p.conninfo(APP_USER, "app").kwargs()):
        with psycopg.connect(**kwargs, prepare_threshold=0, autocommit=True) as conn:
            for i in range(250):
                assert conn.execute(f"SELECT %s::int + {i}", (1,)).fetchone() == (1 + i,)
            with conn.transaction():
                for i in range(250, 400):
                    assert conn.execute(f"SELECT %s::int + {i}", (1,)).fetchone() == (1 + i,)
            # The oldest are gone, the newest still work.
            for i in range(390, 400):
                assert conn.execute(f"SELECT %s::int + {i}", (2,)).fetchone() == (2 + i,)


def test_statement_used_in_a_failed_transaction_stays_prepared(proxy_factory, pg):
    """A Bind (or EXECUTE) of a statement in a transaction that already failed is refused with
    25P02 and the statement stays prepared, also when the proxy had to prepare it on that backend
    first (its own Parse is refused with 25P02 too)."""
    p = proxy_factory(pool_size=1)
    _both(pg, p, [
        _parse(b"s1", b"SELECT $1::int * 3", INT4) + SYNC,  # not on any backend yet
        query_message("BEGIN"),
        query_message("SELECT 1/0"),
        _bind(b"s1", b"1") + EXECUTE + SYNC,
        query_message("ROLLBACK"),
        _bind(b"s1", b"2") + EXECUTE + SYNC,
        query_message("EXECUTE s1(3)"),
        # The client's own Parse in a failed transaction creates nothing.
        query_message("BEGIN"),
        query_message("SELECT 1/0"),
        _parse(b"s2", b"SELECT 4") + _bind(b"s2") + EXECUTE + SYNC,
        query_message("ROLLBACK"),
        _bind(b"s2") + EXECUTE + SYNC,
    ])
