"""Pipelining and COPY through the proxy (issue 7, item 5): libpq pipeline mode with many
queued queries across several Syncs in transaction mode, simple-query pipelining, errors in the
middle of a pipeline, COPY FROM STDIN / TO STDOUT, and a client abort with CopyFail, after which
the session and its backend are clean."""

from __future__ import annotations

import struct
import threading
import time

import asyncpg
import asyncio
import psycopg
import pytest
from psycopg import errors as pgerr

from harness import APP_USER, ROLES, psql
from harness.wire import RawConn, message, query_message


def _connect(proxy, **kw):
    kw.setdefault("prepare_threshold", None)
    return proxy.connect(APP_USER, "app", **kw)


def _pid(conn) -> int:
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


class Churn:
    """Other clients running short transactions, so a pipelining client competes for backends
    (and, between its Syncs, may land on another one)."""

    def __init__(self, conns) -> None:
        self.stop = threading.Event()
        self.done = 0
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in conns]
        for t in self.threads:
            t.start()

    def _run(self, conn) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                with conn.transaction():
                    assert conn.execute("SELECT %s::int", (n,)).fetchone() == (n,)
                    conn.execute("SELECT pg_sleep(0.003)")
            except Exception as e:  # noqa: BLE001
                self.errors.append(repr(e))
                return
            n += 1
            self.done += 1

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)
        assert not self.errors, self.errors[:3]


@pytest.fixture
def table(pg):
    made = []

    def make(name: str, cols: str = "id int PRIMARY KEY, v text") -> str:
        pg.query(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({cols});"
                 f"GRANT ALL ON {name} TO PUBLIC", dbname="app")
        made.append(name)
        return name

    yield make
    for name in made:
        pg.query(f"DROP TABLE IF EXISTS {name}", dbname="app")


# ---------------------------------------------------------------------------------------------
# Pipelining


@pytest.mark.timeout(120)
@pytest.mark.parametrize("prepare_threshold", [None, 0], ids=["unnamed", "prepared"])
def test_psycopg_pipeline_100_queries_across_syncs(proxy_factory, table, prepare_threshold):
    """Four clients, each sending pipelines of 100 queries with a Sync after every 10, through
    2 backends while other clients churn: every result is right and in order."""
    t = table("pp_pipe")
    proxy = proxy_factory(mode="transaction", pool_size=2)
    churn = Churn([_connect(proxy) for _ in range(2)])
    errors = []

    def client(k: int) -> None:
        try:
            conn = _connect(proxy, prepare_threshold=prepare_threshold)
            for rep in range(3):
                base = (k * 3 + rep) * 100
                cursors = []
                with conn.pipeline() as p:
                    for i in range(100):
                        n = base + i
                        if i % 10 == 9:  # a write, then a read that must see it
                            conn.execute(f"INSERT INTO {t} VALUES (%s, %s)", (n, f"c{k}"))
                            cursors.append((n, conn.execute(
                                f"SELECT count(*) FROM {t} WHERE v = %s", (f"c{k}",))))
                            p.sync()
                        else:
                            cursors.append((n, conn.execute("SELECT %s::int * 2, %s::text",
                                                            (n, f"q{n}"))))
                writes = 0
                for i, (n, cur) in enumerate(cursors):
                    rows = cur.fetchall()
                    if (n - base) % 10 == 9:
                        writes += 1
                        assert rows == [(rep * 10 + writes,)], (k, rep, i, rows)
                    else:
                        assert rows == [(n * 2, f"q{n}")], (k, rep, i, rows)
                assert writes == 10
            conn.close()
        except Exception as e:  # noqa: BLE001
            errors.append(f"client {k}: {e!r}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(90)
    churn.finish()
    assert not errors, errors
    assert proxy.cluster.query(f"SELECT count(*) FROM {t}", dbname="app") == [(4 * 3 * 10,)]


def _pipeline_with_an_error(blocks: int = 10, per_block: int = 10, bad=(4, 5)) -> bytes:
    """Parse/Bind/Describe/Execute of `blocks * per_block` unnamed statements, a Sync after
    each block; one of them divides by zero."""
    out = b""
    for blk in range(blocks):
        for i in range(per_block):
            q = b"SELECT $1::int / 0" if (blk, i) == bad else b"SELECT $1::int"
            v = str(blk * per_block + i).encode()
            out += (message(b"P", b"\0" + q + b"\0\0\0")
                    + message(b"B", b"\0\0\0\0\0\x01" + struct.pack("!I", len(v)) + v + b"\0\0")
                    + message(b"D", b"P\0") + message(b"E", b"\0\0\0\0\0"))
        out += message(b"S")
    return out


def _replies(raw, n_ready: int) -> list[tuple[bytes, bytes]]:
    got = []
    while sum(k == b"Z" for k, _ in got) < n_ready:
        m = raw.read_message(10)
        if m.kind not in (b"N", b"S"):
            got.append((m.kind, m.payload if m.kind in (b"D", b"Z") else b""))
    return got


@pytest.mark.timeout(60)
def test_pipeline_error_skips_only_to_the_next_sync(proxy_factory, pg):
    """An error in the middle of a pipeline: the server skips to the next Sync and goes on. The
    client sees exactly what PostgreSQL itself sends, also when the pipeline reaches the proxy
    in pieces (the error comes back before the Sync that ends the failed block was sent) and
    other clients churn through the two backends between the Syncs."""
    pipeline = _pipeline_with_an_error()
    with RawConn(pg.host, pg.port) as direct:
        direct.login(APP_USER, ROLES[APP_USER].password, "app")
        direct.send(pipeline)
        expected = _replies(direct, 10)
    assert [k for k, _ in expected].count(b"E") == 1
    proxy = proxy_factory(mode="transaction", pool_size=2)
    churn = Churn([_connect(proxy)])
    try:
        with RawConn("127.0.0.1", proxy.port) as raw:
            raw.login(APP_USER, ROLES[APP_USER].password, "app")
            for piece in (len(pipeline), 997, 64):  # one write, then slices cut anywhere
                for off in range(0, len(pipeline), piece):
                    raw.send(pipeline[off:off + piece])
                    if piece < len(pipeline):
                        time.sleep(0.0005)
                assert _replies(raw, 10) == expected, f"pieces of {piece} bytes"
            rows, errors = raw.simple_query("SELECT 'after'")
            assert rows == [["after"]] and not errors
    finally:
        churn.finish()

        
@pytest.mark.timeout(60)
def test_pipeline_transaction_spanning_syncs_keeps_its_backend(proxy_factory):
    """BEGIN in one Sync, work in the next ones, COMMIT in the last: the server says 'in
    transaction' at each Sync, so the client must keep one backend for all of it."""
    proxy = proxy_factory(mode="transaction", pool_size=2)
    churn = Churn([_connect(proxy) for _ in range(2)])
    conn = _connect(proxy)
    try:
        for _ in range(10):
            cursors = []
            with conn.pipeline() as p:
                conn.execute("BEGIN")
                p.sync()
                for _ in range(5):
                    cursors.append(conn.execute(
                        "SELECT pg_backend_pid(), txid_current(), pg_sleep(0.002)::text"))
                    p.sync()
                conn.execute("COMMIT")
                p.sync()
            seen = {cur.fetchone()[:2] for cur in cursors}
            assert len(seen) == 1, f"one transaction ran on several backends/xids: {seen}"
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        churn.finish()


def _rows(msgs) -> list[list[str]]:
    out = []
    for m in msgs:
        if m.kind != b"D":
            continue
        (n,) = struct.unpack("!H", m.payload[:2])
        pos, row = 2, []
        for _ in range(n):
            (ln,) = struct.unpack("!i", m.payload[pos:pos + 4])
            pos += 4
            row.append(None if ln < 0 else m.payload[pos:pos + ln].decode())
            pos += max(ln, 0)
        out.append(row)
    return out


def _read_until_n_ready(raw: RawConn, n: int, timeout: float = 10) -> list[list]:
    """Messages grouped per ReadyForQuery, for n ReadyForQuery messages."""
    groups, cur = [], []
    deadline = time.monotonic() + timeout
    while len(groups) < n:
        m = raw.read_message(max(0.01, deadline - time.monotonic()))
        cur.append(m)
        if m.kind == b"Z":
            groups.append(cur)
            cur = []
    return groups


@pytest.mark.timeout(60)
def test_simple_query_pipelining_100_queries_in_one_write(proxy_factory):
    proxy = proxy_factory(mode="transaction", pool_size=1)
    other = _connect(proxy)
    with RawConn("127.0.0.1", proxy.port) as raw:
        raw.login(APP_USER, ROLES[APP_USER].password, "app")
        for rep in range(3):
            batch = b"".join(query_message(f"SELECT {rep * 100 + i}, 'q{i}'") for i in range(100))
            raw.send(batch)
            groups = _read_until_n_ready(raw, 100)
            for i, g in enumerate(groups):
                assert [m.kind for m in g] == [b"T", b"D", b"C", b"Z"], (rep, i, g)
                assert _rows(g) == [[str(rep * 100 + i), f"q{i}"]]
                assert g[-1].payload == b"I"
            # Another client gets the single backend between the batches.
            assert other.execute("SELECT 'other'").fetchone() == ("other",)
        # A failing query in the middle only fails itself (each Query is its own transaction).
        batch = b"".join(query_message("SELECT 1/0" if i == 50 else f"SELECT {i}")
                         for i in range(100))
        raw.send(batch)
        groups = _read_until_n_ready(raw, 100)
        for i, g in enumerate(groups):
            if i == 50:
                assert [m.kind for m in g] == [b"E", b"Z"] and g[0].sqlstate == "22012", g
            else:
                assert _rows(g) == [[str(i)]], (i, g)


@pytest.mark.timeout(60)
def test_extended_protocol_pipeline_in_one_write(proxy_factory):
    """100 Parse/Bind/Execute with a Sync after every 10 and Flushes in between, in one write,
    with an error in the 4th batch: exactly 10 ReadyForQuery, the right rows, in order."""
    proxy = proxy_factory(mode="transaction", pool_size=1)
    other = _connect(proxy)

    def pbe(sql: str) -> bytes:
        return (message(b"P", b"\0" + sql.encode() + b"\0\0\0")
                + message(b"B", b"\0\0\0\0\0\0\0\0")
                + message(b"E", b"\0\0\0\0\0"))

    with RawConn("127.0.0.1", proxy.port) as raw:
        raw.login(APP_USER, ROLES[APP_USER].password, "app")
        for rep in range(2):
            batch = b""
            for i in range(100):
                batch += pbe("SELECT 1/0" if i == 35 else f"SELECT {i}")
                if i % 10 == 4:
                    batch += message(b"H")
                if i % 10 == 9:
                    batch += message(b"S")
            raw.send(batch)
            groups = _read_until_n_ready(raw, 10)
            for blk, g in enumerate(groups):
                if blk == 3:
                    # 30..34 ran, 35 failed, the rest up to the Sync was skipped.
                    assert _rows(g) == [[str(i)] for i in range(30, 35)], g
                    assert [m.sqlstate for m in g if m.kind == b"E"] == ["22012"]
                else:
                    assert _rows(g) == [[str(i)] for i in range(blk * 10, blk * 10 + 10)], (blk, g)
                assert g[-1].kind == b"Z" and g[-1].payload == b"I"
            assert other.execute("SELECT 'other'").fetchone() == ("other",)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_describe_statement_flow_in_every_mode(proxy_factory, mode):
    """Parse / Describe statement / Sync then Bind / Execute / Sync (what asyncpg and JDBC do)."""
    proxy = proxy_factory(mode=mode, pool_size=2)
    with RawConn("127.0.0.1", proxy.port) as raw:
        raw.login(APP_USER, ROLES[APP_USER].password, "app")
        for name in (b"", b"pp_stmt"):
            raw.send(message(b"P", name + b"\0SELECT $1::int + 1\0" + struct.pack("!hI", 1, 23))
                     + message(b"D", b"S" + name + b"\0") + message(b"S"))
            g = _read_until_n_ready(raw, 1)[0]
            assert [m.kind for m in g] == [b"1", b"t", b"T", b"Z"], g
            raw.send(message(b"B", b"\0" + name + b"\0\0\0\0\x01\0\0\0\x0241\0\0")
                     + message(b"E", b"\0\0\0\0\0") + message(b"S"))
            g = _read_until_n_ready(raw, 1)[0]
            assert [m.kind for m in g] == [b"2", b"D", b"C", b"Z"], g
            assert _rows(g) == [["42"]]
        rows, errors = raw.simple_query("SELECT 'still here'")
        assert rows == [["still here"]] and not errors


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_asyncpg_default_client_in_every_mode(proxy_factory, mode):
    proxy = proxy_factory(mode=mode, pool_size=3)
    kw = proxy.conninfo(APP_USER, "app").asyncpg_kwargs()

    async def run():
        conn = await asyncpg.connect(**kw)
        out = []
        for i in range(20):
            out.append(await conn.fetchval("SELECT $1::int * 3", i))
        async with conn.transaction():
            out.append(await conn.fetchval("SELECT 7"))
        await conn.close()
        return out

    assert asyncio.run(run()) == [i * 3 for i in range(20)] + [7]


# ---------------------------------------------------------------------------------------------
# COPY


@pytest.mark.timeout(60)
def test_copy_from_stdin_and_to_stdout(proxy_factory, table):
    t = table("pp_copy", "id int PRIMARY KEY, v text, pad text")
    proxy = proxy_factory(mode="transaction", pool_size=2)
    churn = Churn([_connect(proxy)])
    conn = _connect(proxy)
    n = 20000
    pad = "x" * 100  # ~2.5 MB in all: many CopyData messages and socket reads
    try:
        with conn.cursor() as cur:
            with cur.copy(f"COPY {t} (id, v, pad) FROM STDIN") as copy:
                for i in range(n):
                    copy.write_row((i, f"row {i}\ttab", pad))
            assert cur.rowcount == n
        assert conn.execute(f"SELECT count(*), sum(id) FROM {t}").fetchone() == (
            n, n * (n - 1) // 2)
        got = []
        with conn.cursor() as cur:
            with cur.copy(f"COPY (SELECT id, v, pad FROM {t} ORDER BY id) TO STDOUT") as copy:
                for row in copy.rows():
                    got.append(row)
        assert len(got) == n
        assert got[0] == ("0", "row 0\ttab", pad) and got[-1] == (str(n - 1), f"row {n - 1}\ttab",
                                                                   pad)
        assert all(int(r[0]) == i for i, r in enumerate(got))
        # Binary COPY too.
        with conn.cursor() as cur:
            with cur.copy(f"COPY (SELECT id FROM {t} WHERE id < 5 ORDER BY id) TO STDOUT "
                          "(FORMAT BINARY)") as copy:
                copy.set_types(["int4"])
                assert [r[0] for r in copy.rows()] == [0, 1, 2, 3, 4]
        assert conn.execute("SELECT 'after copy'").fetchone() == ("after copy",)
    finally:
        churn.finish()


@pytest.mark.timeout(60)
def test_copy_through_psql_simple_protocol(proxy_factory, table):
    t = table("pp_copy_psql")
    proxy = proxy_factory(mode="transaction", pool_size=2)
    data = "".join(f"{i}\tv{i}\n" for i in range(1000))
    r = psql(proxy.conninfo(APP_USER, "app"), args=["-q"], input=f"COPY {t} FROM STDIN;\n{data}\\.\n"
             f"SELECT count(*), max(id) FROM {t};\n"
             f"COPY (SELECT v FROM {t} WHERE id IN (0, 999) ORDER BY id) TO STDOUT;\n")
    assert r.rc == 0, r.stderr
    assert r.rows == [["1000", "999"], ["v0"], ["v999"]], r.stdout


def _backend_clean(pg, pid: int) -> None:
    rows = pg.query("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,), dbname="app")
    assert rows in ([("idle",)], []), f"backend {pid} left in state {rows}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "in_transaction"])
def test_copy_from_stdin_aborted_by_the_client(proxy_factory, pg, table, in_transaction):
    """psycopg sends CopyFail when the copy block raises: the server fails the COPY, the client
    goes on, and the backend is clean for the next client."""
    t = table("pp_copy_fail")
    proxy = proxy_factory(mode="transaction", pool_size=1)
    conn = _connect(proxy)
    if in_transaction:
        conn.execute("BEGIN")
        conn.execute(f"INSERT INTO {t} VALUES (-1, 'before')")
    pid = _pid(conn)

    class Abort(Exception):
        pass

    t0 = time.monotonic()
    with pytest.raises((Abort, pgerr.QueryCanceled)):
        with conn.cursor() as cur:
            with cur.copy(f"COPY {t} FROM STDIN") as copy:
                for i in range(5000):
                    copy.write_row((i, "doomed"))
                raise Abort("client gives up")
    assert time.monotonic() - t0 < 5
    if in_transaction:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        conn.execute("ROLLBACK")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.execute(f"SELECT count(*) FROM {t}").fetchone() == (0,)
    assert conn.execute("SELECT 'usable'").fetchone() == ("usable",)
    # The same client can COPY again, and the next client finds the backend clean.
    with conn.cursor() as cur:
        with cur.copy(f"COPY {t} FROM STDIN") as copy:
            copy.write_row((1, "kept"))
    _backend_clean(pg, pid)
    other = _connect(proxy)
    assert _pid(other) == pid
    assert other.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert other.execute(f"SELECT id, v FROM {t}").fetchall() == [(1, "kept")]


@pytest.mark.timeout(60)
def test_copy_from_stdin_with_a_bad_row(proxy_factory, pg, table):
    """The server fails the COPY while the client is still sending data; the proxy must drop
    the rest of the client's CopyData and keep the session in step."""
    t = table("pp_copy_bad")
    proxy = proxy_factory(mode="transaction", pool_size=1)
    conn = _connect(proxy)
    pid = _pid(conn)
    with pytest.raises(pgerr.InvalidTextRepresentation):
        with conn.cursor() as cur:
            with cur.copy(f"COPY {t} FROM STDIN") as copy:
                copy.write(b"1\tok\nnot-a-number\tbad\n")
                for i in range(2, 20000):  # keeps sending after the server gave up
                    copy.write(f"{i}\tafter\n".encode())
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.execute(f"SELECT count(*) FROM {t}").fetchone() == (0,)
    assert conn.execute("SELECT 'usable'").fetchone() == ("usable",)
    _backend_clean(pg, pid)
    other = _connect(proxy)
    assert other.execute("SELECT 'other'").fetchone() == ("other",)


@pytest.mark.timeout(60)
def test_copy_fail_on_the_wire(proxy_factory, table):
    """CopyFail by hand: ErrorResponse 57014 naming the client's message, then ReadyForQuery;
    and the connection is reused for a normal query."""
    t = table("pp_copy_wire")
    proxy = proxy_factory(mode="transaction", pool_size=1)
    with RawConn("127.0.0.1", proxy.port) as raw:
        raw.login(APP_USER, ROLES[APP_USER].password, "app")
        raw.send(query_message(f"COPY {t} FROM STDIN"))
        m = raw.read_message(5)
        assert m.kind == b"G", m
        raw.send(message(b"d", b"1\tx\n") + message(b"f", b"client says no\0"))
        g = _read_until_n_ready(raw, 1)[0]
        assert [m.kind for m in g] == [b"E", b"Z"], g
        assert g[0].sqlstate == "57014" and "client says no" in g[0].fields()["M"]
        assert g[1].payload == b"I"
        rows, errors = raw.simple_query(f"SELECT count(*) FROM {t}")
        assert rows == [["0"]] and not errors
