"""Prepared statements in transaction pooling (issue 7): clients that prepare named statements
work unmodified while their transactions land on different backends."""

from __future__ import annotations

import asyncio
import struct
import threading

import asyncpg
import psycopg
import pytest

from harness import APP_USER, BENCH_USER, ROLES, pgbench
from harness.wire import RawConn, message

pytestmark = pytest.mark.needs("prepared_statements")


@pytest.mark.timeout(180)
def test_asyncpg_default_statement_cache_200_tasks_10_backends(proxy_factory):
    p = proxy_factory(pool_size=10)
    kw = p.conninfo(BENCH_USER, "bench").asyncpg_kwargs()

    async def run() -> tuple[int, list]:
        pool = await asyncpg.create_pool(min_size=200, max_size=200, **kw)  # default cache on
        done, errors = 0, []

        async def task(i: int):
            nonlocal done
            for j in range(50):
                try:
                    async with pool.acquire() as conn:
                        v = await conn.fetchval("SELECT $1::int + $2::int", i, j)
                        assert v == i + j
                        row = await conn.fetchrow(
                            "SELECT aid, abalance FROM pgbench_accounts WHERE aid = $1", i * 50 + j + 1)
                        assert row["aid"] == i * 50 + j + 1
                        done += 2
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))

        await asyncio.gather(*(task(i) for i in range(200)))
        await pool.close()
        return done, errors

    done, errors = asyncio.run(run())
    assert not errors, errors[:5]
    assert done == 200 * 50 * 2  # 20,000 queries


@pytest.mark.timeout(180)
def test_psycopg_prepare_threshold_0_many_threads(proxy_factory):
    p = proxy_factory(pool_size=10)
    ci = p.conninfo(BENCH_USER, "bench")
    errors, done = [], [0]
    lock = threading.Lock()

    def worker(i: int):
        try:
            with psycopg.connect(**ci.kwargs(), prepare_threshold=0, autocommit=True) as conn:
                for j in range(100):
                    r = conn.execute("SELECT %s::int * 2, %s::text", (j, f"t{i}")).fetchone()
                    assert r == (j * 2, f"t{i}")
                    with conn.transaction():
                        conn.execute("SELECT abalance FROM pgbench_accounts WHERE aid = %s", (j + 1,))
                    with lock:
                        done[0] += 2
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    assert done[0] == 50 * 100 * 2


@pytest.mark.timeout(120)
def test_pgbench_prepared_through_transaction_pooling(proxy_factory):
    p = proxy_factory(pool_size=10)
    r = pgbench(p.conninfo(BENCH_USER, "bench"), clients=100, jobs=2, seconds=6, select_only=True,
                protocol="prepared", timeout=90)
    assert r.failed == 0 and r.clean, r.errors
    assert r.processed > 1000
    r = pgbench(p.conninfo(BENCH_USER, "bench"), clients=40, jobs=2, seconds=5,
                protocol="prepared", timeout=90)  # TPC-B-like: BEGIN ... END, updates
    assert r.failed == 0 and r.clean, r.errors


def _bind(stmt: bytes, *text_params: bytes) -> bytes:
    """Bind to the unnamed portal: text parameters, text results."""
    body = b"\0" + stmt + b"\0" + struct.pack("!h", 0) + struct.pack("!h", len(text_params))
    for v in text_params:
        body += struct.pack("!i", len(v)) + v
    return message(b"B", body + struct.pack("!h", 0))


def test_jdbc_style_protocol_flow(proxy_factory):
    """Unnamed and named statements, Describe before Bind, Parse/Bind/Execute/Sync pipelines —
    checked byte by byte on the wire, over several transactions that may use different backends."""
    p = proxy_factory(pool_size=3)
    with RawConn("127.0.0.1", p.port) as raw:
        raw.login(APP_USER, ROLES[APP_USER].password, "app")
        # Named statement, Describe statement before any Bind, then Sync.
        raw.send(message(b"P", b"S_1\0SELECT $1::int + 1\0" + struct.pack("!hI", 1, 23))
                 + message(b"D", b"SS_1\0") + message(b"S"))
        kinds = [m.kind for m in raw.read_until_ready()]
        assert kinds == [b"1", b"t", b"T", b"Z"], kinds
        for i in range(20):  # many transactions: the statement must follow the client
            raw.send(_bind(b"S_1", str(i).encode())
                     + message(b"E", b"\0" + struct.pack("!i", 0)) + message(b"S"))
            msgs = raw.read_until_ready()
            kinds = [m.kind for m in msgs]
            assert kinds == [b"2", b"D", b"C", b"Z"], (i, kinds)
            data = msgs[1].payload
            (ncol,) = struct.unpack("!h", data[:2])
            (ln,) = struct.unpack("!i", data[2:6])
            assert data[6:6 + ln] == str(i + 1).encode()
        # Unnamed statement pipeline with two Syncs in one write.
        batch = b""
        for v in (5, 6):
            batch += (message(b"P", b"\0SELECT " + str(v).encode() + b"\0\0\0")
                      + message(b"B", b"\0\0\0\0\0\0\0\0") + message(b"E", b"\0\0\0\0\0")
                      + message(b"S"))
        raw.send(batch)
        assert [m.kind for m in raw.read_until_ready()] == [b"1", b"2", b"D", b"C", b"Z"]
        assert [m.kind for m in raw.read_until_ready()] == [b"1", b"2", b"D", b"C", b"Z"]
        # An error mid-pipeline: the server skips to Sync; so must the proxy's bookkeeping. The
        # client holds no backend when it sends this Parse, so the proxy acknowledges it and
        # prepares it where it is first used: the server's error arrives in place of the Bind.
        raw.send(message(b"P", b"S_2\0SELECT nope\0\0\0") + message(b"B", b"\0S_2\0\0\0\0\0\0\0")
                 + message(b"E", b"\0\0\0\0\0") + message(b"S"))
        msgs = raw.read_until_ready()
        assert [m.kind for m in msgs] == [b"1", b"E", b"Z"], msgs
        assert msgs[1].sqlstate == "42703" and "nope" in msgs[1].fields()["M"], msgs[1].fields()
        # The failed statement is not left behind under the client's name.
        raw.send(_bind(b"S_2") + message(b"S"))
        msgs = raw.read_until_ready()
        assert msgs[0].kind == b"E" and msgs[0].sqlstate == "26000", msgs
        assert "S_2" in msgs[0].fields()["M"]
        # Close of the named statement is answered, and the name is gone afterwards.
        raw.send(message(b"C", b"SS_1\0") + message(b"S"))
        assert [m.kind for m in raw.read_until_ready()] == [b"3", b"Z"]
        raw.send(message(b"B", b"\0S_1\0\0\0\0\0\0\0") + message(b"S"))
        msgs = raw.read_until_ready()
        assert msgs[0].kind == b"E" and msgs[0].sqlstate == "26000", msgs


def test_schema_change_mid_run_recovers_without_reconnect(proxy_factory, pg):
    pg.query("DROP TABLE IF EXISTS ps_schema; CREATE TABLE ps_schema (id int, v text);"
             "INSERT INTO ps_schema VALUES (1, 'a'); GRANT ALL ON ps_schema TO PUBLIC", dbname="app")
    p = proxy_factory(pool_size=2)
    conn = psycopg.connect(**p.conninfo(APP_USER, "app").kwargs(), prepare_threshold=0,
                           autocommit=True)
    q = "SELECT * FROM ps_schema WHERE id = %s"
    assert conn.execute(q, (1,)).fetchone() == (1, "a")
    pg.query("ALTER TABLE ps_schema ADD COLUMN w int DEFAULT 7", dbname="app")
    # The server copy of the statement is stale now: at most one error, then it works again.
    failures = 0
    for _ in range(4):
        try:
            row = conn.execute(q, (1,)).fetchone()
        except psycopg.errors.FeatureNotSupported as e:
            assert "cached plan must not change result type" in str(e)
            failures += 1
            continue
        assert row == (1, "a", 7)
    assert failures <= 2  # once per backend that held the old plan
    assert conn.execute(q, (1,)).fetchone() == (1, "a", 7)
    conn.close()


def test_deallocate_all_and_discard_all_from_the_client(proxy_factory):
    p = proxy_factory(pool_size=2)
    conn = psycopg.connect(**p.conninfo(APP_USER, "app").kwargs(), prepare_threshold=0,
                           autocommit=True)
    assert conn.execute("SELECT %s::int", (1,)).fetchone() == (1,)
    conn.execute("DEALLOCATE ALL")
    assert conn.execute("SELECT %s::int + 1", (1,)).fetchone() == (2,)
    conn.execute("DISCARD ALL")
    assert conn.execute("SELECT %s::int + 2", (1,)).fetchone() == (3,)
    conn.close()
