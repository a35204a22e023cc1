"""psycopg 3 and asyncpg through transaction mode (the drivers most Python apps use).

psycopg runs with prepare_threshold=None (no server-side named statements: that is issue 7's
prepared-statement tracking); asyncpg with statement_cache_size=0 (unnamed statements only).
"""

import asyncio
import datetime
import decimal
import threading
import uuid

import asyncpg
import psycopg
import pytest
from psycopg import errors as pgerr

from harness import APP_USER, BackendSampler


@pytest.fixture
def tproxy(proxy_factory):
    return proxy_factory(mode="transaction", pool_size=4)


def connect(proxy, **kw):
    kw.setdefault("prepare_threshold", None)
    return proxy.connect(APP_USER, "app", **kw)


def test_psycopg_simple_queries_and_parameters(tproxy):
    conn = connect(tproxy)
    assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
    values = (42, -7, 3.5, "héllo 'quoted' \"text\"", None, True, b"\x00\x01\xff",
              decimal.Decimal("12345.678901"), datetime.date(2024, 2, 29),
              uuid.UUID("12345678-1234-5678-1234-567812345678"), [1, 2, 3], {"k": [1, "v"]})
    row = conn.execute(
        "SELECT %s::int, %s::bigint, %s::float8, %s::text, %s::text, %s::bool, %s::bytea, "
        "%s::numeric, %s::date, %s::uuid, %s::int[], %s::jsonb",
        [*values[:11], psycopg.types.json.Jsonb(values[11])]).fetchone()
    assert row == values
    # Binary results too.
    cur = conn.cursor(binary=True)
    assert cur.execute("SELECT %s::int * 2, %s::text", (21, "bin")).fetchone() == (42, "bin")
    # A larger result: 20,000 rows of ~100 bytes, in order.
    rows = conn.execute("SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g").fetchall()
    assert len(rows) == 20000 and rows[0][0] == 1 and rows[-1][0] == 20000
    # executemany (pipelined by psycopg) into a table.
    conn.execute("DROP TABLE IF EXISTS drv_t")
    conn.execute("CREATE TABLE drv_t (id int PRIMARY KEY, v text)")
    with conn.cursor() as c:
        c.executemany("INSERT INTO drv_t VALUES (%s, %s)", [(i, f"v{i}") for i in range(500)])
    assert conn.execute("SELECT count(*), sum(id) FROM drv_t").fetchone() == (500, sum(range(500)))


def test_psycopg_transactions(tproxy):
    a = connect(tproxy)
    b = connect(tproxy)
    a.execute("DROP TABLE IF EXISTS drv_tx")
    a.execute("CREATE TABLE drv_tx (id int PRIMARY KEY, v text)")
    with a.transaction():
        a.execute("INSERT INTO drv_tx VALUES (1, 'committed')")
        # Not visible to another client before COMMIT...
        assert b.execute("SELECT count(*) FROM drv_tx").fetchone() == (0,)
        pid_in_tx = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        # ... and the whole transaction stays on one backend.
        for _ in range(5):
            assert a.execute("SELECT pg_backend_pid()").fetchone()[0] == pid_in_tx
    assert b.execute("SELECT v FROM drv_tx WHERE id = 1").fetchone() == ("committed",)

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        with a.transaction():
            a.execute("INSERT INTO drv_tx VALUES (2, 'rolled back')")
            raise Abort()
    assert b.execute("SELECT count(*) FROM drv_tx").fetchone() == (1,)

    # Non-autocommit connection: implicit BEGIN, explicit commit/rollback.
    c = connect(tproxy, autocommit=False)
    c.execute("INSERT INTO drv_tx VALUES (3, 'x')")
    c.rollback()
    c.execute("INSERT INTO drv_tx VALUES (4, 'y')")
    c.commit()
    assert b.execute("SELECT array_agg(id ORDER BY id) FROM drv_tx").fetchone() == ([1, 4],)


def test_psycopg_error_mid_transaction_then_rollback_and_continue(tproxy):
    conn = connect(tproxy)
    conn.execute("DROP TABLE IF EXISTS drv_err")
    conn.execute("CREATE TABLE drv_err (id int)")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO drv_err VALUES (1)")
    with pytest.raises(pgerr.DivisionByZero) as ei:
        conn.execute("SELECT 1 / 0")
    assert ei.value.sqlstate == "22012"
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    with pytest.raises(pgerr.InFailedSqlTransaction):
        conn.execute("SELECT 1")
    conn.execute("ROLLBACK")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.execute("SELECT 2").fetchone() == (2,)
    assert conn.execute("SELECT count(*) FROM drv_err").fetchone() == (0,)
    # A statement error outside a transaction does not stick either.
    with pytest.raises(pgerr.UndefinedTable):
        conn.execute("SELECT * FROM drv_no_such_table")
    assert conn.execute("SELECT 3").fetchone() == (3,)


def test_psycopg_many_threads_share_a_small_pool(tproxy, pg):
    # 40 connections, 4 backends: each thread sees only its own data and transactions.
    conn0 = connect(tproxy)
    conn0.execute("DROP TABLE IF EXISTS drv_mt")
    conn0.execute("CREATE TABLE drv_mt (thread int, n int)")
    errors = []

    def worker(t: int) -> None:
        try:
            with psycopg.connect(**tproxy.conninfo(APP_USER, "app").kwargs(), autocommit=True,
                                 prepare_threshold=None) as c:
                for n in range(20):
                    with c.transaction():
                        c.execute("INSERT INTO drv_mt VALUES (%s, %s)", (t, n))
                        got = c.execute("SELECT %s::int", (t * 1000 + n,)).fetchone()[0]
                        if got != t * 1000 + n:
                            errors.append(f"thread {t} got {got}")
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(f"thread {t}: {e!r}")

    with BackendSampler(pg) as sampler:
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(40)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
    assert not errors, errors[:5]
    assert conn0.execute("SELECT count(*), count(DISTINCT (thread, n)) FROM drv_mt").fetchone() \
        == (800, 800)
    assert sampler.max_by_user.get(APP_USER, 0) <= 4, sampler.summary()


@pytest.mark.timeout(180)
def test_asyncpg_many_concurrent_tasks(tproxy, pg):
    TASKS, ITER = 100, 30

    async def main():
        setup = await asyncpg.connect(**tproxy.conninfo(APP_USER, "app").asyncpg_kwargs(),
                                      statement_cache_size=0)
        await setup.execute("DROP TABLE IF EXISTS drv_async")
        await setup.execute("CREATE TABLE drv_async (task int, i int, v text)")
        await setup.close()

        async def task(t: int) -> int:
            conn = await asyncpg.connect(**tproxy.conninfo(APP_USER, "app").asyncpg_kwargs(),
                                         statement_cache_size=0)
            try:
                ok = 0
                for i in range(ITER):
                    v = await conn.fetchval("SELECT $1::int * 1000 + $2::int", t, i)
                    assert v == t * 1000 + i, (t, i, v)
                    rows = await conn.fetch("SELECT g FROM generate_series(1, $1::int) g", i + 1)
                    assert [r["g"] for r in rows] == list(range(1, i + 2))
                    async with conn.transaction():
                        await conn.execute("INSERT INTO drv_async VALUES ($1, $2, $3)",
                                           t, i, f"t{t}i{i}")
                        n = await conn.fetchval(
                            "SELECT count(*) FROM drv_async WHERE task = $1", t)
                        assert n == i + 1, (t, i, n)
                    ok += 1
                # An error is reported and the connection carries on.
                with pytest.raises(asyncpg.DivisionByZeroError):
                    await conn.fetchval("SELECT 1 / $1::int", 0)
                await conn.executemany("INSERT INTO drv_async VALUES ($1, $2, 'many')",
                                       [(t, 1000 + k) for k in range(10)])
                assert await conn.fetchval("SELECT 7") == 7
                return ok
            finally:
                await conn.close()

        results = await asyncio.wait_for(asyncio.gather(*(task(t) for t in range(TASKS))), 150)
        return results

    with BackendSampler(pg) as sampler:
        results = asyncio.run(main())
    assert results == [ITER] * TASKS
    n = pg.query("SELECT count(*), count(DISTINCT (task, i)) FROM drv_async", dbname="app")[0]
    assert n == (TASKS * (ITER + 10), TASKS * (ITER + 10))
    assert sampler.max_by_user.get(APP_USER, 0) <= 4, sampler.summary()
