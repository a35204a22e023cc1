"""Transaction mode: the lease lasts until ReadyForQuery 'I' with no outstanding Sync, so
pipelined and extended-protocol clients, failed transactions and COPY all work."""

import io
import threading
import time

import psycopg
import pytest
from psycopg import errors as pgerr

from harness import APP_USER, BackendSampler


def _connect(proxy, **kw):
    kw.setdefault("prepare_threshold", None)
    return proxy.connect(APP_USER, "app", **kw)


def _kwargs(proxy):
    return dict(proxy.conninfo(APP_USER, "app").kwargs(), autocommit=True,
                prepare_threshold=None)


@pytest.mark.timeout(120)
def test_pipelined_clients_get_their_own_results(proxy_factory, pg):
    # Backends of an earlier test that are still exiting would count against this proxy's pool:
    # wait for them first. (CI saw 3 of user app with a pool of 2, twice, on the kernel path;
    # this is one possible cause, not a confirmed one: it never showed when the test ran alone.
    # The assertion below prints the proxy's own connects and closes to tell.)
    pg.wait_no_backends(APP_USER)
    proxy = proxy_factory(mode="transaction", pool_size=2)
    errors = []
    THREADS, ROUNDS, QUERIES = 8, 5, 100

    def worker(t: int) -> None:
        try:
            with psycopg.connect(**_kwargs(proxy)) as c:
                for r in range(ROUNDS):
                    with c.pipeline() as p:
                        curs = []
                        for i in range(QUERIES):
                            curs.append(c.execute("SELECT %s::int, %s::int, %s::int", (t, r, i)))
                            if i % 10 == 9:
                                p.sync()  # several Syncs in flight at once
                    got = [cur.fetchone() for cur in curs]
                    want = [(t, r, i) for i in range(QUERIES)]
                    if got != want:
                        bad = next(i for i in range(QUERIES) if got[i] != want[i])
                        errors.append(f"thread {t} round {r}: query {bad} got {got[bad]}")
                        return
        except Exception as e:  # noqa: BLE001 - asserted below
            errors.append(f"thread {t}: {e!r}")

    with BackendSampler(pg) as sampler:
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(100)
    assert not errors, errors[:5]
    pool_events = [(n, lb.get("reason", ""), v) for n, lb, v in proxy.metrics()
                   if n in ("helios_proxy_backend_connects_total",
                            "helios_proxy_backend_closed_total") and v]
    assert sampler.max_by_user.get(APP_USER, 0) <= 2, f"{sampler.summary()}; proxy: {pool_events}"


def test_pipeline_transaction_across_syncs_and_error_recovery(proxy_factory):
    proxy = proxy_factory(mode="transaction", pool_size=2)
    conn = _connect(proxy)
    conn.execute("DROP TABLE IF EXISTS tx_pipe")
    conn.execute("CREATE TABLE tx_pipe (id int PRIMARY KEY)")
    # A transaction that spans several Syncs keeps its backend (ReadyForQuery 'T' in between).
    with conn.pipeline() as p:
        with conn.transaction():
            pid1 = conn.execute("SELECT pg_backend_pid()")
            conn.execute("INSERT INTO tx_pipe VALUES (1)")
            p.sync()
            conn.execute("INSERT INTO tx_pipe VALUES (2)")
            p.sync()
            pid2 = conn.execute("SELECT pg_backend_pid()")
    assert pid1.fetchone() == pid2.fetchone()
    assert conn.execute("SELECT array_agg(id ORDER BY id) FROM tx_pipe").fetchone() == ([1, 2],)

    # An error aborts the rest of its Sync segment only; the next segment runs.
    with pytest.raises(pgerr.DivisionByZero):
        with conn.pipeline() as p:
            conn.execute("INSERT INTO tx_pipe VALUES (10)")
            conn.execute("SELECT 1 / 0")
            conn.execute("INSERT INTO tx_pipe VALUES (11)")  # aborted with the segment
            p.sync()
    with conn.pipeline() as p:
        c = conn.execute("SELECT 42")
        p.sync()
    assert c.fetchone() == (42,)
    assert conn.execute("SELECT array_agg(id ORDER BY id) FROM tx_pipe").fetchone() == ([1, 2],)


@pytest.mark.timeout(60)
def test_error_in_transaction_keeps_the_lease_until_rollback(proxy_factory, pg):
    proxy = proxy_factory(mode="transaction", pool_size=1,
                          connection_pool={"acquire_timeout": "20s"})
    a = _connect(proxy)
    a.execute("DROP TABLE IF EXISTS tx_err")
    a.execute("CREATE TABLE tx_err (id int)")
    a.execute("BEGIN")
    a.execute("INSERT INTO tx_err VALUES (1)")
    pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
    with pytest.raises(pgerr.DivisionByZero):
        a.execute("SELECT 1 / 0")
    assert a.info.transaction_status == psycopg.pq.TransactionStatus.INERROR

    # B needs the only backend: it must wait while A's failed transaction is open.
    b = _connect(proxy)
    result = {}

    def run_b():
        t0 = time.monotonic()
        try:
            result["value"] = b.execute("SELECT pg_backend_pid(), 'b'").fetchone()
        except Exception as e:  # noqa: BLE001
            result["error"] = e
        result["t"] = time.monotonic() - t0

    th = threading.Thread(target=run_b)
    th.start()
    time.sleep(1.5)
    assert th.is_alive(), f"B ran while A's failed transaction held the backend: {result}"
    states = {r["pid"]: r["state"] for r in pg.backends(APP_USER)}
    assert states.get(pid) == "idle in transaction (aborted)", states

    # A still owns that backend: its next statement is refused by the same failed transaction.
    with pytest.raises(pgerr.InFailedSqlTransaction):
        a.execute("SELECT 1")
    a.execute("ROLLBACK")
    th.join(15)
    assert not th.is_alive(), "B did not get the backend after A's ROLLBACK"
    assert "error" not in result, result
    assert result["value"] == (pid, "b")
    # A continues normally; its insert is gone.
    assert a.execute("SELECT count(*) FROM tx_err").fetchone() == (0,)


def test_copy_from_stdin_and_to_stdout(proxy_factory):
    proxy = proxy_factory(mode="transaction", pool_size=2)
    conn = _connect(proxy)
    conn.execute("DROP TABLE IF EXISTS tx_copy")
    conn.execute("CREATE TABLE tx_copy (id int PRIMARY KEY, v text, big text)")
    N = 20000
    big = "B" * 300_000  # a row larger than any socket buffer
    with conn.cursor() as cur:
        with cur.copy("COPY tx_copy (id, v, big) FROM STDIN") as copy:
            for i in range(N):
                copy.write_row((i, f"value {i}\twith tab", big if i == 7 else None))
    assert conn.execute("SELECT count(*), sum(id), max(length(big)) FROM tx_copy").fetchone() \
        == (N, sum(range(N)), len(big))

    # COPY TO STDOUT: every row back, in order, byte-exact.
    buf = io.BytesIO()
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT id, v, big FROM tx_copy ORDER BY id) TO STDOUT") as copy:
            for chunk in copy:
                buf.write(chunk)
    lines = buf.getvalue().decode().splitlines()
    assert len(lines) == N
    assert lines[0] == "0\tvalue 0\\twith tab\t\\N"
    assert lines[7].endswith("\t" + big)
    assert lines[-1].startswith(f"{N - 1}\t")

    # A client that aborts its COPY (CopyFail) gets an error and carries on.
    class GiveUp(Exception):
        pass

    with pytest.raises((GiveUp, pgerr.QueryCanceled)):  # psycopg sends CopyFail
        with conn.cursor() as cur:
            with cur.copy("COPY tx_copy (id, v) FROM STDIN") as copy:
                copy.write_row((N + 1, "never stored"))
                raise GiveUp("client gives up")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.execute("SELECT count(*) FROM tx_copy").fetchone() == (N,)

    # COPY inside an explicit transaction, then rolled back.
    with pytest.raises(RuntimeError):
        with conn.transaction():
            with conn.cursor() as cur:
                with cur.copy("COPY tx_copy (id, v) FROM STDIN") as copy:
                    copy.write_row((N + 2, "rolled back"))
            raise RuntimeError("roll back")
    assert conn.execute("SELECT count(*) FROM tx_copy").fetchone() == (N,)
