"""Lease splicing with real PostgreSQL clients, before the worker integration (issue 6, part 2).

bench/kernel/kernel_tool pgrelay is a session relay in front of the test cluster: it does startup
and auth in user space, then hands the pair to SpliceEngine (path "splice": every later byte is
framed and forwarded by the sk_skb verdict) or keeps copying (path "user", the control). The
same client workloads run through both and must give the same results: psql, pgbench simple /
extended / prepared, psycopg, asyncpg, COPY in and out, an error in the middle of a transaction,
a pipeline, a large result. Terminate reaches the backend through the hand-back path.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "kernel"))

from harness import APP_USER, BENCH_USER, ROLES, ConnInfo, free_port, pgbench, psql  # noqa: E402
from kernel_tool import KernelToolUnavailable, PgRelay  # noqa: E402

pytestmark = [pytest.mark.needs("kernel_data_path")]


@pytest.fixture(params=["user", "splice"])
def relay(pg, request):
    if os.geteuid() != 0:
        pytest.skip("splicing needs root (CAP_BPF, CAP_NET_ADMIN)")
    r = PgRelay(f"{pg.host}:{pg.port}", free_port(avoid={pg.port}), request.param)
    try:
        r.__enter__()
    except KernelToolUnavailable as e:
        pytest.skip(f"lease splicing unavailable: {e}")
    r.path = request.param
    yield r
    r.__exit__(None, None, None)
    if request.param == "splice":
        # Every session was spliced, and the kernel (not the copy loop) moved the results.
        assert r.final.get("spliced", 0) == r.final.get("clients", -1), r.final
        assert r.final["kernel"]["forwarded_skbs"] > 0, r.final


def ci(relay, user=APP_USER, db="app") -> ConnInfo:
    return ConnInfo("127.0.0.1", relay.port, user, ROLES[user].password, db,
                    {"connect_timeout": 10, "sslmode": "disable"})


def test_psql_queries_errors_and_copy(relay):
    c = ci(relay)
    r = psql(c, "SELECT 6 * 7")
    assert r.rc == 0 and r.rows == [["42"]], r.stderr
    # An error in the middle of a transaction, then the session goes on.
    r = psql(c, args=["-c", "BEGIN", "-c", "SELECT 1/0", "-c", "SELECT 'ignored'",
                      "-c", "ROLLBACK", "-c", "SELECT 'after'"], on_error_stop=False)
    assert any(e.sqlstate == "22012" for e in r.errors), r.stderr
    assert ["after"] in r.rows, r.stdout
    assert any(e.sqlstate == "25P02" for e in r.errors), r.stderr  # in the failed transaction
    # COPY in and out.
    r = psql(c, args=["-c", "CREATE TEMP TABLE t(x int)", "-c", "COPY t FROM STDIN",
                      "-c", "SELECT count(*), sum(x) FROM t",
                      "-c", "COPY (SELECT generate_series(1, 50000)) TO STDOUT"],
             input="".join(f"{i}\n" for i in range(1, 1001)) + "\\.\n")
    assert r.rc == 0, r.stderr
    assert ["1000", "500500"] in r.rows
    assert len(r.rows) >= 50000


def test_large_result(relay):
    # 10 MB in one DataRow: many skbs of one message, forwarded by the body countdown.
    big = psql(ci(relay), "SELECT repeat('y', 10*1024*1024) || 'end'")
    assert big.rc == 0, big.stderr
    value = big.rows[0][0]
    assert len(value) == 10 * 1024 * 1024 + 3 and value.endswith("yend")
    assert hashlib.md5(value.encode()).hexdigest() == \
        hashlib.md5(("y" * (10 * 1024 * 1024) + "end").encode()).hexdigest()


@pytest.mark.parametrize("protocol", ["simple", "extended", "prepared"])
def test_pgbench(relay, protocol):
    res = pgbench(ci(relay, BENCH_USER, "bench"), clients=4, jobs=2, seconds=3, protocol=protocol)
    assert res.clean, res.describe()


def test_psycopg_pipeline_and_prepared(relay):
    import psycopg
    with psycopg.connect(**ci(relay).kwargs(), autocommit=True) as conn:
        with conn.pipeline():
            curs = [conn.execute("SELECT %s::int * 2", (i,)) for i in range(50)]
        assert [c.fetchone()[0] for c in curs] == [i * 2 for i in range(50)]
        for i in range(10):  # prepared after a few executions (named statements)
            assert conn.execute("SELECT %s::text || 'z'", (str(i),), prepare=True).fetchone()[0] \
                == f"{i}z"
        with conn.transaction():
            conn.execute("CREATE TEMP TABLE u(v text)")
            conn.execute("INSERT INTO u SELECT g::text FROM generate_series(1, 100) g")
        assert conn.execute("SELECT count(*) FROM u").fetchone()[0] == 100


def test_asyncpg(relay):
    import asyncpg

    async def run():
        conn = await asyncpg.connect(**ci(relay).asyncpg_kwargs())
        try:
            rows = await conn.fetch("SELECT g, g * g FROM generate_series(1, 1000) g")
            assert len(rows) == 1000 and rows[-1][1] == 1000000
            stmt = await conn.prepare("SELECT $1::int + 1")
            assert await stmt.fetchval(41) == 42
            async with conn.transaction():
                await conn.execute("CREATE TEMP TABLE w(x int)")
                await conn.copy_records_to_table("w", records=[(i,) for i in range(500)])
            assert await conn.fetchval("SELECT sum(x) FROM w") == sum(range(500))
        finally:
            await conn.close()

    asyncio.run(run())
