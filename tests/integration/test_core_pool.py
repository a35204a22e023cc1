"""Pool behaviour users rely on: acquire_timeout errors, no dirty backend after a client vanishes
mid-transaction, and surviving a backend killed under load."""

import re
import socket
import struct
import time

import pytest

from harness import APP_USER, BENCH_USER, ROLES, BackendSampler, pgbench, psql
from harness.wire import RawConn, query_message, terminate_message


@pytest.mark.timeout(60)
def test_acquire_timeout_gives_53300_naming_pool_and_limit(proxy_factory, pg):
    proxy = proxy_factory(mode="transaction", pool_size=1,
                          connection_pool={"acquire_timeout": "1s"})
    # The pool (bench, app) has one backend; A holds it in an open transaction.
    a = proxy.connect(APP_USER, "bench", prepare_threshold=None)
    a.execute("BEGIN")
    a.execute("SELECT 1")
    with RawConn(proxy.host, proxy.port) as b:
        b.login(APP_USER, ROLES[APP_USER].password, "bench")
        t0 = time.monotonic()
        b.send(query_message("SELECT 'b got a backend'"))
        ex = b.read_response(10)
        waited = time.monotonic() - t0
    assert ex.errors, f"B was not refused: {ex.describe()}"
    f = ex.errors[0].fields()
    assert 0.8 <= waited <= 3.5, f"refused after {waited:.2f}s with acquire_timeout=1s: {f}"
    if not proxy.unsupported("sqlstate_53300_on_acquire_timeout"):
        assert f.get("C") == "53300", f
        msg = f.get("M", "")
        assert "bench" in msg and APP_USER in msg, f"message does not name the pool: {msg!r}"
        assert re.search(r"\b1\b", msg), f"message does not name the limit (1): {msg!r}"
    # A is untouched and commits; then the pool serves others again.
    assert a.execute("SELECT 'a ok'").fetchone() == ("a ok",)
    a.execute("COMMIT")
    assert psql(proxy.conninfo(APP_USER, "bench"), "SELECT 1").rows == [["1"]]


def _abandon(proxy, how: str) -> int:
    """Logs in raw, opens a transaction with an uncommitted row and a SET LOCAL, then leaves
    the way `how` says. Returns the backend pid that served it."""
    c = RawConn(proxy.host, proxy.port)
    c.login(APP_USER, ROLES[APP_USER].password, "app")
    rows, errors = c.simple_query(
        "BEGIN; INSERT INTO dirty_t VALUES ('uncommitted'); SET LOCAL work_mem = '9MB'; "
        "SELECT pg_backend_pid()")
    assert not errors, errors
    pid = int(rows[0][0])
    if how == "terminate":  # polite Terminate mid-transaction
        c.send(terminate_message())
        c.close()
    elif how == "close":  # FIN without Terminate
        c.close()
    elif how == "reset":  # RST
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    else:
        raise ValueError(how)
    return pid


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["terminate", "close", "reset"])
def test_client_gone_mid_transaction_leaves_no_dirty_backend(proxy_factory, pg, how):
    proxy = proxy_factory(mode="transaction", pool_size=1)
    setup = proxy.connect(APP_USER, "app", prepare_threshold=None)
    setup.execute("CREATE TABLE IF NOT EXISTS dirty_t (v text)")
    setup.execute("DELETE FROM dirty_t")
    setup.close()

    pid = _abandon(proxy, how)
    # The proxy rolls the backend back or closes it: no 'idle in transaction' backend stays.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        st = {b["pid"]: b["state"] for b in pg.backends(APP_USER)}
        if not st.get(pid, "").startswith("idle in transaction"):
            break
        time.sleep(0.05)
    assert not st.get(pid, "").startswith("idle in transaction"), st

    conn = proxy.connect(APP_USER, "app", prepare_threshold=None)
    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary))
    now_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    assert now_pid == pid or pid not in {b["pid"] for b in pg.backends()}, \
        "the abandoned backend is neither reused nor closed"
    assert conn.execute("SELECT count(*) FROM dirty_t").fetchone() == (0,)
    assert conn.execute("SELECT pg_current_xact_id_if_assigned()").fetchone() == (None,)
    assert conn.execute("SHOW work_mem").fetchone() != ("9MB",)
    conn.execute("BEGIN")
    conn.execute("INSERT INTO dirty_t VALUES ('committed')")
    conn.execute("COMMIT")
    assert not any("already a transaction" in n or "no transaction" in n for n in notices), \
        notices
    assert conn.execute("SELECT array_agg(v) FROM dirty_t").fetchone() == (["committed"],)


KILL_SCRIPT = """\\set aid random(1, 100000)
BEGIN;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SELECT pg_sleep(0.05);
END;
"""


@pytest.mark.timeout(120)
def test_backend_killed_mid_load_only_hurts_its_client(proxy_factory, pg):
    POOL = 10
    proxy = proxy_factory(mode="transaction", pool_size=POOL)
    ci = proxy.conninfo(BENCH_USER, "bench")
    run = pgbench(ci, clients=50, jobs=2, seconds=9, script=KILL_SCRIPT, progress=1,
                  background=True)
    killed = []
    time.sleep(3)
    for _ in range(2):
        # A backend in the middle of a client's transaction (leased, not idle in the pool).
        busy = [b for b in pg.backends(BENCH_USER)
                if b["state"] == "active" and "pg_sleep" in (b["query"] or "")] or \
               [b for b in pg.backends(BENCH_USER) if b["state"] == "idle in transaction"]
        assert busy, f"no busy {BENCH_USER} backend to kill: {pg.backends(BENCH_USER)}"
        assert pg.terminate(busy[0]["pid"])
        killed.append(busy[0]["pid"])
        time.sleep(1)
    # While pgbench still runs, the proxy serves a brand-new client.
    assert psql(ci, "SELECT count(*) FROM pgbench_branches").rows == [["1"]]
    r = run.result()

    # The clients whose backend died got an error (pgbench aborts such a client) ...
    assert 1 <= len(r.aborted_clients) <= len(killed), r.describe(30)
    others = [e for e in r.errors
              if not re.search(r"client \d+ (script \d+ )?aborted|Run was aborted", e)]
    assert not others, r.describe(30)
    # ... and everyone else carried on to the end of the run.
    assert r.clients == 50 and r.processed > 0, r.describe()
    late = [tps for (t, tps, _) in r.progress if t >= 7]
    assert late and min(late) > 0, f"no progress late in the run: {r.progress}"

    # The pool is whole again: a clean run at full size afterwards.
    with BackendSampler(pg) as sampler:
        r2 = pgbench(ci, clients=20, jobs=2, seconds=2, select_only=True)
    assert r2.clean, r2.describe()
    assert sampler.max_by_user.get(BENCH_USER, 0) <= POOL
