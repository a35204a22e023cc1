"""Backends that die under the pool (issue 14): while clients run autocommit statements in
transaction mode, another connection terminates every backend of the pool again and again
(pg_terminate_backend, as an operator or a failover does). A backend found dead while idle is
replaced before it is leased, and a transaction whose backend ends before answering anything
goes to another backend: the autocommit clients see no error, save for a statement that was
already answering when its backend was terminated (as directly). Clients inside explicit
transactions lose the transaction that was open on a terminated backend, and only those see an
error. Runs on every data path in HELIOS_DATA_PATHS."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from harness import APP_USER

POOL = 6
ROUNDS = 6
ROUND_GAP = 0.5


class Load:
    """Client threads through the proxy; each counts its statements and its errors."""

    def __init__(self, proxy) -> None:
        self.proxy = proxy
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done = {"autocommit": 0, "prepared": 0, "transaction": 0}
        self.errors = {"autocommit": [], "prepared": [], "transaction": []}
        self.threads: list[threading.Thread] = []

    def _connect(self):
        return psycopg.connect(**self.proxy.conninfo(APP_USER, "app").kwargs(), autocommit=True,
                               prepare_threshold=None)

    def _run(self, kind: str, n: int) -> None:
        conn = self._connect()
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                if kind == "autocommit":
                    if i % 2:
                        conn.execute("SELECT 1").fetchone()
                    else:
                        assert conn.execute("SELECT %s::int", (i,)).fetchone()[0] == i
                elif kind == "prepared":  # a tracked named statement (prepared_statement_mode)
                    row = conn.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone()
                    assert row[0] == i + 1
                else:
                    with conn.transaction():
                        conn.execute("SELECT 1").fetchone()
                        time.sleep(0.01)
                        conn.execute("SELECT 2").fetchone()
                with self.lock:
                    self.done[kind] += 1
            except psycopg.Error as e:
                with self.lock:
                    self.errors[kind].append(f"{type(e).__name__}: {e}".strip())
                try:
                    conn.close()
                except psycopg.Error:
                    pass
                conn = self._connect()
        conn.close()

    def start(self, kinds: dict) -> None:
        for kind, count in kinds.items():
            for n in range(count):
                t = threading.Thread(target=self._run, args=(kind, n), daemon=True)
                t.start()
                self.threads.append(t)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


def _terminate_pool(pg) -> int:
    """Terminates every backend of the proxy's pool (user app_user on database app)."""
    rows = pg.query("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                    "FROM pg_stat_activity WHERE backend_type = 'client backend' "
                    "AND usename = %s AND datname = 'app' AND pid <> pg_backend_pid()",
                    (APP_USER,))
    return int(rows[0][0])


def _run_with_terminations(pg, proxy, kinds: dict) -> tuple[Load, int]:
    load = Load(proxy)
    load.start(kinds)
    time.sleep(1.0)
    killed = 0
    try:
        for _ in range(ROUNDS):
            killed += _terminate_pool(pg)
            time.sleep(ROUND_GAP)
        time.sleep(0.5)
    finally:
        load.finish()
    return load, killed


def _assert_autocommit_unharmed(errors: list[str]) -> None:
    """Autocommit statements see no error from a backend that died before answering them (found
    dead while idle, or ending before its first reply: the statement goes to another backend).
    The one exception is PostgreSQL's own: a statement already answering when its backend was
    terminated has sent part of its reply, so it cannot be run again, and the client gets the
    termination as it would directly. Terminating every backend 6 times hits a running SELECT 1
    rarely (seen once in CI runs under load, on each path): at most one per round is allowed,
    and every one must be that termination."""
    assert len(errors) <= ROUNDS, errors[:5]
    for e in errors:
        assert "terminating connection due to administrator command" in e, e


@pytest.mark.timeout(120)
def test_autocommit_clients_never_see_a_terminated_backend(pg, proxy_factory):
    p = proxy_factory(mode="transaction", pool_size=POOL)
    load, killed = _run_with_terminations(pg, p, {"autocommit": 6, "prepared": 2})
    print(f"terminated {killed} backends in {ROUNDS} rounds; statements: {load.done}; "
          f"errors: { {k: len(v) for k, v in load.errors.items()} }; "
          f"retried transactions: {p.metric('helios_proxy_lease_retries_total'):.0f}; "
          f"dead idle backends replaced: "
          f"{p.metric('helios_proxy_backend_closed_total', reason='dead_idle'):.0f}")
    assert killed >= ROUNDS * 2, f"only {killed} backends were terminated"
    assert load.done["autocommit"] > 100 and load.done["prepared"] > 20, load.done
    _assert_autocommit_unharmed(load.errors["autocommit"])
    _assert_autocommit_unharmed(load.errors["prepared"])
    # And the pool is whole again: every client still gets served.
    with p.connect() as c:
        assert c.execute("SELECT 42").fetchone()[0] == 42


@pytest.mark.timeout(120)
def test_only_clients_inside_a_transaction_see_the_termination(pg, proxy_factory):
    p = proxy_factory(mode="transaction", pool_size=POOL)
    load, killed = _run_with_terminations(pg, p, {"autocommit": 4, "transaction": 4})
    txn_errors = load.errors["transaction"]
    print(f"terminated {killed} backends; statements: {load.done}; autocommit errors "
          f"{len(load.errors['autocommit'])}; transaction errors {len(txn_errors)}: "
          f"{sorted(set(e.split(':')[0] for e in txn_errors))}")
    _assert_autocommit_unharmed(load.errors["autocommit"])
    # Each terminated backend ends at most the one transaction open on it, and with four
    # clients holding transactions most of the time, some of them were.
    assert 1 <= len(txn_errors) <= killed, (len(txn_errors), killed)
    for e in txn_errors:
        assert "terminat" in e or "closed" in e or "connection" in e, e
    assert load.done["transaction"] > 20, load.done


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_terminated_inside_a_transaction_transaction_mode_keeps_the_client(pg, proxy_factory,
                                                                           mode, data_path):
    """pg_terminate_backend on the backend of a client inside a transaction: the server sends
    FATAL 57P01 on its own. Transaction mode: the client keeps its connection, idle in the
    transaction (told at its next statement) or waiting for a statement (told at once), with
    08006 and ReadyForQuery 'I'. Session mode: its server session is gone, so it is closed."""
    p = proxy_factory(mode=mode, pool_size=POOL)
    with p.connect() as c:
        c.execute("BEGIN")
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert pg.terminate(pid)
        time.sleep(0.3)
        with pytest.raises(psycopg.OperationalError) as e:
            c.execute("SELECT 1")
        if mode == "session":
            assert c.closed
            return
        # On the kernel path the server's FATAL may already be on its way to the client in the
        # kernel (the lease's replies are spliced); the proxy's 08006 and ReadyForQuery follow.
        lost = ("08006", "57P01") if data_path == "kernel" else ("08006",)
        assert e.value.sqlstate in lost, e.value
        assert not c.closed
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        # Waiting for a statement inside a transaction when the FATAL comes.
        c.execute("BEGIN")
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        killer = threading.Timer(0.5, lambda: pg.terminate(pid))
        killer.start()
        with pytest.raises(psycopg.OperationalError) as e:
            c.execute("SELECT pg_sleep(10)")
        killer.join()
        assert e.value.sqlstate in lost, e.value
        assert "terminating connection due to administrator command" in str(e.value)
        assert not c.closed
        assert c.execute("SELECT 2").fetchone() == (2,)
        # Idle in a transaction that is lost, the client rolls back: that is all it could want
        # of it, so the ROLLBACK succeeds; anything else in the same Query is told of the loss.
        for rollback, survives in (("ROLLBACK", True), ("rollback work;", True),
                                   ("/* bye */ ABORT TRANSACTION", True),
                                   ("ROLLBACK; SELECT 1", False), ("COMMIT", False)):
            c.execute("BEGIN")
            pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
            assert pg.terminate(pid)
            time.sleep(0.3)
            if survives and data_path != "kernel":
                c.execute(rollback)  # no error
            elif survives:
                # The server's FATAL may have reached the client through the kernel first.
                try:
                    c.execute(rollback)
                except psycopg.OperationalError as e:
                    assert e.sqlstate == "57P01", (rollback, e)
            else:
                with pytest.raises(psycopg.OperationalError) as e:
                    c.execute(rollback)
                assert e.value.sqlstate in lost, (rollback, e.value)
            assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE, rollback
            assert c.execute("SELECT 3").fetchone() == (3,)
    assert p.metric("helios_proxy_backend_losses_survived_total") == 7
