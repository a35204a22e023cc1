"""Cancel through the proxy (issue 7, item 3): a CancelRequest with the proxy-issued key cancels
the right backend query whichever worker accepts it, quickly; it never touches other clients; a
queued client is taken out of the queue with 57014; a late or forged cancel does nothing."""

from __future__ import annotations

import socket
import struct
import threading
import time

import psycopg
import pytest
from psycopg import errors as pgerr

from harness import APP_USER, ROLES, wait_until
from harness.wire import CANCEL_REQUEST_CODE, RawConn, query_message


def _connect(proxy, **kw):
    return proxy.connect(APP_USER, "app", prepare_threshold=None, **kw)


def _active(pg, needle: str) -> int:
    """How many backends are running a query containing `needle` right now."""
    return sum(1 for b in pg.backends(usename=APP_USER)
               if b["state"] == "active" and needle in (b["query"] or ""))


class Running:
    """conn.execute(sql) in a thread; records the outcome and when it arrived."""

    def __init__(self, conn, sql: str, params=None) -> None:
        self.conn, self.sql, self.params = conn, sql, params
        self.result = self.error = self.t_done = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.conn.execute(self.sql, self.params).fetchall()
        except Exception as e:  # noqa: BLE001
            self.error = e
        self.t_done = time.monotonic()

    def join(self, timeout: float = 15) -> "Running":
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.sql!r} still running after {timeout}s"
        return self


class Churn:
    """Clients that keep running short queries, counting completions and errors."""

    def __init__(self, conns) -> None:
        self.stop = threading.Event()
        self.done = [0] * len(conns)
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i, c), daemon=True)
                        for i, c in enumerate(conns)]
        for t in self.threads:
            t.start()

    def _run(self, i: int, conn) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                r = conn.execute("SELECT %s::int, pg_sleep(0.002)", (n,)).fetchone()
                assert r == (n, ""), r
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"client {i}: {e!r}")
                return
            n += 1
            self.done[i] = n

    def total(self) -> int:
        return sum(self.done)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_cancel_pg_sleep_within_100ms_others_unaffected(proxy_factory, pg, mode):
    proxy = proxy_factory(mode=mode, pool_size=8)
    churn = Churn([_connect(proxy) for _ in range(3)])
    long_other = Running(_connect(proxy), "SELECT pg_sleep(2.5), 'other long query'")
    latencies = []
    try:
        wait_until(lambda: churn.total() > 30, timeout=10, what="other clients running")
        for attempt in range(6):  # fresh clients and cancel connections: both workers take part
            victim = _connect(proxy)
            tag = f"pc_victim_{mode}_{attempt}"
            run = Running(victim, f"SELECT pg_sleep(10) AS {tag}")
            wait_until(lambda: _active(pg, tag), timeout=5, what=f"{tag} running")
            before = churn.total()
            t0 = time.monotonic()
            victim.cancel()
            run.join(5)
            assert isinstance(run.error, pgerr.QueryCanceled), (attempt, run.error, run.result)
            assert run.error.sqlstate == "57014"
            latencies.append(run.t_done - t0)
            # The cancelled client goes on, on a clean state.
            assert victim.execute("SELECT 'after cancel'").fetchone() == ("after cancel",)
            victim.close()  # session mode: its backend goes back for the next victim
            assert not churn.errors, churn.errors
            time.sleep(0.05)
            assert churn.total() > before, "other clients stalled around the cancel"
        long_other.join(10)
        assert long_other.error is None, long_other.error
        assert long_other.result == [("", "other long query")]
    finally:
        churn.finish()
    assert not churn.errors, churn.errors
    slow = [f"{x * 1000:.0f} ms" for x in latencies if x >= 0.1]
    print(f"cancel latencies ({mode}): {[round(x * 1000, 1) for x in latencies]} ms")
    assert not slow, (f"cancel took >= 100 ms in {len(slow)} of {len(latencies)} tries: {slow} "
                      f"(all: {[round(x * 1000) for x in latencies]} ms)")


@pytest.mark.timeout(60)
def test_cancel_reaches_the_right_client_across_workers(proxy_factory, pg):
    """Eight clients (spread over both workers) sleep at once; cancelling the even ones must
    cancel exactly those."""
    proxy = proxy_factory(mode="transaction", pool_size=8)
    conns = [_connect(proxy) for _ in range(8)]
    runs = [Running(c, f"SELECT pg_sleep({'10' if i % 2 == 0 else '1.5'}), {i} AS pc_multi_{i}")
            for i, c in enumerate(conns)]
    wait_until(lambda: _active(pg, "pc_multi_") == 8, timeout=5, what="8 sleeping clients")
    t0 = time.monotonic()
    for c in conns[0::2]:
        c.cancel()
    for i, r in enumerate(runs):
        r.join(15)
        if i % 2 == 0:
            assert isinstance(r.error, pgerr.QueryCanceled), (i, r.error, r.result)
            assert r.t_done - t0 < 1.0, f"client {i} cancelled after {r.t_done - t0:.2f}s"
        else:
            assert r.error is None, f"client {i} was hit by another client's cancel: {r.error}"
            assert r.result == [("", i)]


@pytest.mark.timeout(60)
def test_cancel_of_a_queued_client_removes_it_with_57014(proxy_factory, pg):
    pg.query("DROP TABLE IF EXISTS pc_queued; CREATE TABLE pc_queued (v text);"
             "GRANT ALL ON pc_queued TO PUBLIC", dbname="app")
    proxy = proxy_factory(mode="transaction", pool_size=1,
                          connection_pool={"acquire_timeout": "10s"})
    holder = _connect(proxy)
    holder.execute("BEGIN")
    holder.execute("SELECT 1")
    # The holder's backend is busy with a query of its own while the cancel comes in.
    holder_sleep = Running(holder, "SELECT pg_sleep(1.0), 'holder'")
    victim = _connect(proxy)
    queued = Running(victim, "INSERT INTO pc_queued VALUES ('ran after its cancel')")
    time.sleep(0.3)
    assert queued.thread.is_alive(), f"not queued: {queued.error or queued.result}"
    t0 = time.monotonic()
    victim.cancel()
    queued.join(5)
    assert isinstance(queued.error, pgerr.QueryCanceled), queued.error
    assert queued.error.sqlstate == "57014"
    assert queued.t_done - t0 < 0.5, f"queued client cancelled after {queued.t_done - t0:.2f}s"
    # The client that held the backend was not touched.
    holder_sleep.join(5)
    assert holder_sleep.error is None, f"the holder's query was cancelled: {holder_sleep.error}"
    assert holder_sleep.result == [("", "holder")]
    holder.execute("COMMIT")
    # The cancelled statement was dropped from the queue: it never runs, even once a backend
    # is free; the victim's next statement gets its own answer.
    time.sleep(0.3)
    assert victim.execute("SELECT 'victim goes on'").fetchone() == ("victim goes on",)
    assert pg.query("SELECT count(*) FROM pc_queued", dbname="app") == [(0,)]
    assert holder.execute("SELECT 'holder goes on'").fetchone() == ("holder goes on",)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_late_cancel_does_nothing(proxy_factory, pg, mode):
    proxy = proxy_factory(mode=mode, pool_size=1 if mode == "transaction" else 2)
    a = _connect(proxy)
    assert a.execute("SELECT 1").fetchone() == (1,)
    a.cancel()  # nothing running: the cancel has nothing to act on
    time.sleep(0.1)
    t0 = time.monotonic()
    assert a.execute("SELECT pg_sleep(0.3), 'next'").fetchone() == ("", "next")
    assert time.monotonic() - t0 >= 0.3
    if mode == "transaction":
        # A's lease is over; the single backend now runs B's query. A's late cancel must not
        # reach it.
        b = _connect(proxy)
        run = Running(b, "SELECT pg_sleep(0.8), 'b' AS pc_late_b")
        wait_until(lambda: _active(pg, "pc_late_b"), timeout=5, what="B running")
        a.cancel()
        run.join(5)
        assert run.error is None, f"A's cancel hit B's query: {run.error}"
        assert run.result == [("", "b")]
    assert a.execute("SELECT pg_sleep(0.2), 'still fine'").fetchone() == ("", "still fine")


def _cancel_request(host: str, port: int, pid: int, secret: int) -> None:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(struct.pack("!IIII", 16, CANCEL_REQUEST_CODE, pid, secret))
        s.settimeout(5)
        try:
            s.recv(1)  # the proxy closes the connection once it has handled the request
        except OSError:
            pass


@pytest.mark.timeout(60)
def test_cancel_needs_the_right_key(proxy_factory):
    proxy = proxy_factory(mode="transaction", pool_size=2)
    with RawConn("127.0.0.1", proxy.port) as raw:
        st = raw.login(APP_USER, ROLES[APP_USER].password, "app")
        pid, secret = st["_backend_key"]
        raw.send(query_message("SELECT pg_sleep(1.0), 'finished'"))
        time.sleep(0.2)
        for bad in ((pid, secret ^ 1), (pid ^ 1, secret), (pid, 0)):
            _cancel_request("127.0.0.1", proxy.port, *bad)
        t0 = time.monotonic()
        ex = raw.read_response(5)
        kinds = [m.kind for m in ex.messages]
        assert kinds == [b"T", b"D", b"C", b"Z"], ex.describe()
        assert b"finished" in ex.messages[1].payload
        assert time.monotonic() - t0 > 0.5  # it ran its full second
        # The right key works on the same connection.
        raw.send(query_message("SELECT pg_sleep(10)"))
        time.sleep(0.2)
        t0 = time.monotonic()
        _cancel_request("127.0.0.1", proxy.port, pid, secret)
        ex = raw.read_response(5)
        assert [m.sqlstate for m in ex.messages if m.kind == b"E"] == ["57014"], ex.describe()
        assert ex.messages[-1].kind == b"Z"
        assert time.monotonic() - t0 < 1.0
        rows, errors = raw.simple_query("SELECT 'goes on'")
        assert rows == [["goes on"]] and not errors


@pytest.mark.timeout(60)
def test_cancel_follows_the_client_to_its_current_backend(proxy_factory, pg):
    """In transaction mode a client's queries run on different backends; the cancel must reach
    the one running the query now, and spare the client holding the other backend."""
    proxy = proxy_factory(mode="transaction", pool_size=2)
    victim = _connect(proxy)
    other = _connect(proxy)
    backends = set()
    for i in range(4):
        hold = i % 2 == 1
        if hold:
            other.execute("BEGIN")
            other_pid = other.execute("SELECT pg_backend_pid()").fetchone()[0]
        tag = f"pc_follow_{i}"
        run = Running(victim, f"SELECT pg_sleep(10) AS {tag}")
        wait_until(lambda: _active(pg, tag), timeout=5, what=f"{tag} running")
        pid = next(b["pid"] for b in pg.backends(usename=APP_USER) if tag in (b["query"] or ""))
        backends.add(pid)
        if hold:
            assert pid != other_pid
        t0 = time.monotonic()
        victim.cancel()
        run.join(5)
        assert isinstance(run.error, pgerr.QueryCanceled), (i, run.error)
        assert run.t_done - t0 < 0.5
        if hold:
            assert other.execute("SELECT 'other ok'").fetchone() == ("other ok",)
            assert other.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
            other.execute("COMMIT")
    assert len(backends) == 2, f"the victim never moved backends: {backends}"
