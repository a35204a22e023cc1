"""[connection_pool] query_timeout: a statement running longer is cancelled by the proxy (a
CancelRequest to its backend); the client gets PostgreSQL's own 57014, its connection goes on,
a transaction it was in is aborted as on a direct connection, the backend goes back to the pool
and other clients are not touched. A tenant rule may set its own query_timeout. Runs on every
data path in HELIOS_DATA_PATHS."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg import errors as pgerr

from harness import APP_USER, psql

pytestmark = pytest.mark.needs("metrics")

TIMEOUT = "1s"  # margins wide enough for a loaded 2-core CI machine


def _timed_out(conn, sql: str) -> float:
    t0 = time.monotonic()
    with pytest.raises(pgerr.QueryCanceled) as ei:
        conn.execute(sql)
    assert ei.value.sqlstate == "57014"
    return time.monotonic() - t0


@pytest.mark.timeout(60)
def test_a_long_statement_is_cancelled_and_the_pool_goes_on(proxy_factory):
    # One backend: if the cancelled statement's backend were leaked, nothing after would run.
    p = proxy_factory(mode="transaction", pool_size=1,
                      connection_pool={"query_timeout": TIMEOUT, "acquire_timeout": "3s"})
    conn = p.connect(APP_USER, "app", prepare_threshold=None)
    before = p.metric("helios_proxy_query_timeouts_total")

    took = _timed_out(conn, "SELECT pg_sleep(10)")
    assert 0.9 < took < 3.5, f"cancelled after {took:.2f}s for a {TIMEOUT} query_timeout"
    # The next statement runs to its end.
    assert conn.execute("SELECT 'short'").fetchone() == ("short",)
    # Another client gets the one backend.
    other = p.connect(APP_USER, "app", prepare_threshold=None)
    assert other.execute("SELECT 'other'").fetchone() == ("other",)

    # Inside a transaction: aborted as PostgreSQL aborts it; ROLLBACK brings the client back.
    conn.autocommit = False
    conn.execute("SELECT 1")
    took = _timed_out(conn, "SELECT pg_sleep(10)")
    assert took < 3.5
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    with pytest.raises(pgerr.InFailedSqlTransaction):
        conn.execute("SELECT 2")
    conn.rollback()
    conn.autocommit = True
    # The transaction's backend went back to the pool clean: the other client gets it, and
    # sees no transaction open there.
    assert other.execute("SELECT 'other again'").fetchone() == ("other again",)
    assert conn.execute("SELECT 3").fetchone() == (3,)
    assert p.metric("helios_proxy_query_timeouts_total") - before == 2


@pytest.mark.timeout(60)
def test_psql_gets_57014_and_other_clients_keep_running(proxy_factory):
    p = proxy_factory(mode="transaction", pool_size=4,
                      connection_pool={"query_timeout": TIMEOUT})
    stop = threading.Event()
    counts = {"ok": 0, "errors": []}

    def busy():
        with p.connect(APP_USER, "app", prepare_threshold=None) as c:
            while not stop.is_set():
                try:
                    c.execute("SELECT pg_sleep(0.05)")
                    counts["ok"] += 1
                except psycopg.Error as e:  # noqa: PERF203
                    counts["errors"].append(str(e))

    th = threading.Thread(target=busy)
    th.start()
    try:
        t0 = time.monotonic()
        r = psql(p.conninfo(APP_USER, "app"), "SELECT pg_sleep(10)")  # VERBOSITY=verbose
        took = time.monotonic() - t0
    finally:
        stop.set()
        th.join(10)
    assert r.rc != 0, r
    assert "57014" in r.stderr and "canceling statement" in r.stderr, r.stderr
    assert took < 5, f"psql returned after {took:.2f}s"
    assert counts["errors"] == [], counts["errors"][:3]
    assert counts["ok"] > 5, counts


@pytest.mark.timeout(60)
@pytest.mark.needs("tenant_quotas")
def test_a_tenant_rule_sets_its_own_query_timeout(proxy_factory):
    p = proxy_factory(
        mode="transaction", pool_size=4,
        connection_pool={"query_timeout": "2s"},
        tenant_quotas={"enabled": True, "identifier": "application_name",
                       "limits": [{"tenant_pattern": "batch_*", "query_timeout": "0s"},
                                  {"tenant_pattern": "strict_*", "query_timeout": "200ms"}]})
    batch = p.connect(APP_USER, "app", prepare_threshold=None, application_name="batch_1")
    strict = p.connect(APP_USER, "app", prepare_threshold=None, application_name="strict_1")
    plain = p.connect(APP_USER, "app", prepare_threshold=None, application_name="web")
    # No timeout for batch_*: a statement past the global 2 s runs to its end.
    assert batch.execute("SELECT pg_sleep(2.3), 'batch'").fetchone() == ("", "batch")
    # The default tenant keeps the global [connection_pool] value.
    took = _timed_out(plain, "SELECT pg_sleep(10)")
    assert 1.9 < took < 4.5, f"default tenant's statement cancelled after {took:.2f}s"
    # strict_*: 200 ms, well before the global 2 s.
    took = _timed_out(strict, "SELECT pg_sleep(10)")
    assert took < 1.5, f"strict tenant's statement ran {took:.2f}s"
