"""Graceful drain (SIGTERM, POST /api/v1/drain, heliosctl drain) and online restart: a second
process takes over the listen port (SO_REUSEPORT) while the first drains."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import threading
import time

import psycopg
import pytest
import requests

from harness import APP_USER, BENCH_USER, helios_binary, pgbench
from harness.proxy import HeliosProxy

pytestmark = pytest.mark.needs("admin_api")


def wait_exit(proxy, timeout: float) -> tuple[int, float]:
    t0 = time.monotonic()
    rc = proxy.proc.wait(timeout)
    proxy.returncode = rc
    return rc, time.monotonic() - t0


def connect_error(proxy) -> str:
    """Tries a new connection; returns why it failed ('' if it worked)."""
    try:
        with psycopg.connect(**proxy.conninfo(connect_timeout=3).kwargs()) as c:
            c.execute("SELECT 1")
        return ""
    except psycopg.OperationalError as e:
        return str(e)


@pytest.fixture
def drain_table(pg):
    pg.query("DROP TABLE IF EXISTS ops_drain; CREATE TABLE ops_drain (id int, note text); "
             "GRANT ALL ON ops_drain TO PUBLIC", dbname="app")
    yield "ops_drain"
    pg.query("DROP TABLE IF EXISTS ops_drain", dbname="app")


@pytest.mark.timeout(90)
def test_sigterm_lets_open_transactions_commit_and_refuses_new_clients(proxy_factory, pg,
                                                                       drain_table):
    proxy = proxy_factory({"proxy": {"drain_timeout": "15s"}})
    # An open transaction that has already written, and a pgbench load of tpcb transactions.
    tx = psycopg.connect(**proxy.conninfo().kwargs(), autocommit=False)
    tx.execute("INSERT INTO ops_drain VALUES (1, 'before SIGTERM')")
    bench = pgbench(proxy.conninfo(BENCH_USER, "bench"), clients=8, jobs=2, seconds=30,
                    builtin="tpcb-like", background=True)
    time.sleep(2)
    history_before = pg.query("SELECT count(*) FROM pgbench_history", dbname="bench")[0][0]

    proxy.proc.send_signal(signal.SIGTERM)
    t_term = time.monotonic()
    time.sleep(0.3)
    # The proxy is alive (our transaction is open) but no longer ready, and refuses newcomers
    # cleanly: no TCP listener for them, or a FATAL admin_shutdown.
    assert proxy.alive()
    assert proxy.admin_get("/health").status_code == 200
    ready = proxy.admin_get("/ready")
    assert ready.status_code == 503 and ready.json()["draining"] is True
    why = connect_error(proxy)
    assert why, "a new client was accepted while draining"
    assert "refused" in why.lower() or "shutting down" in why.lower(), why

    # The open transaction finishes normally.
    tx.execute("INSERT INTO ops_drain VALUES (2, 'after SIGTERM')")
    tx.commit()
    tx.close()

    rc, _ = wait_exit(proxy, 20)
    took = time.monotonic() - t_term
    assert rc == 0, proxy.stderr_tail()
    assert took < 15, f"drain took {took:.1f}s with nothing left running"
    rows = pg.query("SELECT id FROM ops_drain ORDER BY id", dbname="app")
    assert rows == [(1,), (2,)]

    # pgbench's clients were told the proxy is shutting down between transactions; every
    # transaction that started committed whole: balances agree with the history rows.
    r = bench.result()
    assert r.processed > 0, r.describe()
    for e in r.errors:
        assert "shutting down" in e or "57P01" in e or "aborted" in e or \
            "server closed the connection" in e or "perhaps the backend died" in e.lower() or \
            "terminating connection" in e, r.describe()
    history = pg.query("SELECT count(*), coalesce(sum(delta), 0) FROM pgbench_history",
                       dbname="bench")[0]
    assert history[0] > history_before
    tellers, branches, accounts = pg.query(
        "SELECT (SELECT sum(tbalance) FROM pgbench_tellers), "
        "(SELECT sum(bbalance) FROM pgbench_branches), "
        "(SELECT sum(abalance) FROM pgbench_accounts)", dbname="bench")[0]
    assert tellers == branches == accounts == history[1]


@pytest.mark.timeout(60)
def test_drain_deadline_cancels_a_long_transaction_and_exits_0(proxy_factory, pg):
    proxy = proxy_factory({"proxy": {"drain_timeout": "2s"}})
    outcome = {}

    def long_query():
        try:
            with psycopg.connect(**proxy.conninfo(application_name="ops_sleeper").kwargs(),
                                 autocommit=False) as c:
                c.execute("SELECT pg_sleep(30)")
                outcome["result"] = "finished"
        except psycopg.Error as e:
            outcome["result"] = f"{type(e).__name__}: {e}"

    t = threading.Thread(target=long_query)
    t.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
            "pg_sleep" in (b["query"] or "") for b in pg.backends(usename=APP_USER)):
        time.sleep(0.05)
    proxy.proc.send_signal(signal.SIGTERM)
    rc, took = wait_exit(proxy, 15)
    t.join(10)
    assert rc == 0, proxy.stderr_tail()
    assert took < 2 + 4, f"exited {took:.1f}s after SIGTERM with drain_timeout 2s"
    assert outcome.get("result", "").startswith(("OperationalError", "AdminShutdown",
                                                 "QueryCanceled")), outcome
    # Nothing of that transaction keeps running in PostgreSQL.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
            "pg_sleep" in (b["query"] or "") and b["state"] == "active"
            for b in pg.backends(usename=APP_USER)):
        time.sleep(0.1)
    assert not any("pg_sleep" in (b["query"] or "") and b["state"] == "active"
                   for b in pg.backends(usename=APP_USER))


@pytest.mark.timeout(60)
def test_heliosctl_drain_waits_for_the_exit(proxy_factory):
    proxy = proxy_factory()
    held = proxy.connect()
    held.execute("SELECT 1")
    env = {**os.environ, "HELIOS_ADMIN_URL": proxy.admin_url,
           "HELIOS_ADMIN_TOKEN_FILE": str(proxy.admin_token_file)}
    ctl = helios_binary().parent / "heliosctl"
    cp = subprocess.run([str(ctl), "drain", "--wait", "20"], capture_output=True, text=True,
                        timeout=30, env=env)
    assert cp.returncode == 0, cp.stderr
    assert "drained" in cp.stdout
    rc, _ = wait_exit(proxy, 5)
    assert rc == 0
    # heliosctl against the exited proxy: unreachable.
    cp = subprocess.run([str(ctl), "status"], capture_output=True, text=True, timeout=30, env=env)
    assert cp.returncode == 3


@pytest.mark.timeout(120)
def test_online_restart_second_process_takes_over_with_no_failed_connect(proxy_factory, pg):
    old = proxy_factory({"proxy": {"drain_timeout": "10s"}}, pool_size=10)
    # A connect-per-transaction load: every transaction is a new connection, so any refused
    # or reset connect during the handover shows up as a pgbench error.
    bench = pgbench(old.conninfo(BENCH_USER, "bench"), clients=6, jobs=2, seconds=10,
                    select_only=True, connect_each=True, background=True)
    time.sleep(2)
    new = HeliosProxy(pg, copy.deepcopy(old.config))  # same listen, admin and metrics ports
    try:
        new.start(timeout=20)  # its SELECT 1 may be served by either process
        deadline = time.monotonic() + 10
        # Its admin and metrics ports are still the old process's: it retries them (logged just
        # after "listening on", so wait for both).
        while time.monotonic() < deadline and not ("listening on" in new.stderr_tail() and
                                                   "retrying in the background" in
                                                   new.stderr_tail()):
            time.sleep(0.05)
        assert "listening on" in new.stderr_tail(), new.stderr_tail()
        assert "retrying in the background" in new.stderr_tail(), new.stderr_tail()
        time.sleep(1)
        old.proc.send_signal(signal.SIGTERM)
        rc, took = wait_exit(old, 20)
        assert rc == 0, old.stderr_tail()
        r = bench.result()
        assert r.clean, r.describe()
        assert not r.aborted_clients and r.failed == 0, r.describe()
        # The successor took over the admin port once its predecessor was gone.
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:
            try:
                status = requests.get(new.admin_url + "/api/v1/status", timeout=2).json()
                break
            except requests.RequestException:
                time.sleep(0.1)
        assert status and status["ready"] is True, status
        assert new.metric("helios_proxy_ready") == 1  # and the metrics port
        assert connect_error(new) == ""
        new.stop(expect_exit=0)
    finally:
        new.cleanup()
