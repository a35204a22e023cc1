"""Workers that follow the load (issue 18, item 1; [proxy] worker_scaling): with `workers` as a
ceiling, only as many workers are awake as the load needs, and clients move between workers
between their transactions. What a user checks: a light load ends up on one worker (the other
parked), a heavy one wakes the second and spreads the clients, and through every move each client
keeps its session (its SETs, its prepared statements, its cancel key) and loses no statement."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg import errors as pgerr

from harness import APP_USER, wait_until

N = 12
LOAD = {"proxy": {"worker_scaling": "load"}}
FIXED = {"proxy": {"worker_scaling": "fixed"}}


def _eventually(pred, timeout: float) -> bool:
    """pred() became true within `timeout` seconds (the caller's assert says what it saw)."""
    try:
        return bool(wait_until(pred, timeout=timeout, interval=0.1))
    except TimeoutError:
        return False


def _connect(proxy):
    return proxy.connect(APP_USER, "app", prepare_threshold=0)


def _clients(p) -> dict[int, float]:
    return {int(lb["worker"]): v for n, lb, v in p.metrics() if n == "helios_proxy_worker_clients"}


def _awake(p) -> dict[int, float]:
    return {int(lb["worker"]): v for n, lb, v in p.metrics() if n == "helios_proxy_worker_awake"}


def _moves(p, direction: str) -> float:
    return p.metric("helios_proxy_worker_client_moves_total", direction=direction)


def _login_worker(conn) -> int:
    """The worker a connection logged in on: bits 29-24 of its BackendKeyData process id."""
    return (conn.info.backend_pid >> 24) & 0x3F


def _check_session(conns) -> None:
    for i, c in enumerate(conns):
        assert c.execute("SHOW statement_timeout").fetchone()[0] == f"{1001 + i}ms"
        assert c.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone()[0] == i + 1
        with c.transaction():
            assert c.execute("SELECT count(*) FROM generate_series(1, %s)", (i + 1,)).fetchone()[0] == i + 1


class Load:
    """Clients each adding 1 to their own row in a transaction and reading it back, flat out:
    any statement lost, repeated or run on another client's session shows as a wrong value."""

    def __init__(self, conns) -> None:
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.done = [0] * len(conns)
        self.threads = [threading.Thread(target=self._run, args=(i, c), daemon=True)
                        for i, c in enumerate(conns)]
        for t in self.threads:
            t.start()

    def _run(self, i: int, c) -> None:
        try:
            while not self.stop.is_set():
                with c.transaction():
                    c.execute("UPDATE scaling_t SET v = v + 1 WHERE id = %s", (i,))
                    v = c.execute("SELECT v FROM scaling_t WHERE id = %s", (i,)).fetchone()[0]
                self.done[i] += 1
                if v != self.done[i]:
                    self.errors.append(f"client {i}: row says {v} after {self.done[i]} commits")
                    return
        except Exception as e:  # noqa: BLE001
            self.errors.append(f"client {i}: {e!r}")

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)
        assert not self.errors, self.errors[:5]
        assert all(d > 0 for d in self.done), self.done


def _table(pg, n: int) -> None:
    with pg.admin_connect("app") as c:
        c.autocommit = True
        c.execute("DROP TABLE IF EXISTS scaling_t")
        c.execute("CREATE TABLE scaling_t (id int PRIMARY KEY, v int)")
        c.execute("INSERT INTO scaling_t SELECT g, 0 FROM generate_series(0, %s) g", (n - 1,))
        c.execute(f"GRANT ALL ON scaling_t TO {APP_USER}")


KERNEL_STAYS = ("kernel data path: a client whose socket joined the splice engine stays on its "
                "worker (docs/architecture.md, \"Workers that follow the load\")")


def test_a_light_load_gathers_on_one_worker_and_sessions_survive_the_move(proxy_factory, data_path):
    if data_path == "kernel":
        pytest.skip(KERNEL_STAYS)
    p = proxy_factory(LOAD)
    conns = [_connect(p) for _ in range(N)]
    for i, c in enumerate(conns):
        c.execute(f"SET statement_timeout = '{1001 + i}ms'")
        c.execute("SELECT %s::int", (i,), prepare=True)  # a prepared statement before the move
    # SO_REUSEPORT spread the logins over both workers; the parked one hands its clients over.
    assert _eventually(lambda: _clients(p).get(1, -1) == 0 and _clients(p).get(0) == N, timeout=15), \
        _clients(p)
    assert _awake(p) == {0: 1.0, 1: 0.0}
    movers = [c for c in conns if _login_worker(c) == 1]
    assert movers, "no client logged in on worker 1 (2^-12 odds): nothing moved"
    assert _moves(p, "out") >= len(movers) and _moves(p, "in") == _moves(p, "out")
    _check_session(conns)
    # A client that moved is still cancellable with the key it got at login.
    c = movers[0]
    c.execute("SET statement_timeout = 0")
    result: list = []

    def run():
        try:
            c.execute("SELECT pg_sleep(30)")
            result.append("finished")
        except Exception as e:  # noqa: BLE001
            result.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    time.sleep(0.5)
    started = time.monotonic()
    c.cancel()
    t.join(10)
    assert result and isinstance(result[0], pgerr.QueryCanceled), result
    assert time.monotonic() - started < 5
    for c in conns:
        c.close()


def test_a_busy_proxy_wakes_the_second_worker_and_parks_it_after(pg, proxy_factory, data_path):
    # A busy target of 1% of a core: any real load counts as busy, so the test does not depend on
    # how fast this machine is.
    _table(pg, N)
    p = proxy_factory({"proxy": {"worker_scaling": "load", "worker_busy_target": 0.01}})
    conns = [_connect(p) for _ in range(N)]
    for i, c in enumerate(conns):
        c.execute(f"SET statement_timeout = '{1001 + i}ms'")
    if data_path != "kernel":
        assert _eventually(lambda: _clients(p).get(1, -1) == 0, timeout=15), _clients(p)
    load = Load(conns)
    try:
        # Worker 1 wakes, and worker 0, with every lease, hands it some of its busy clients.
        # (On the kernel path the clients joined the splice engine and stay on worker 0: only
        # that nothing is lost while worker 1 is awake is checked there.)
        spread = _eventually(lambda: _awake(p).get(1) == 1.0 and
                             (_clients(p).get(1, 0) > 0 or data_path == "kernel"), timeout=15)
        assert spread, (_awake(p), _clients(p), _moves(p, "out"), load.done)
        time.sleep(1.0)  # both serve for a while
    finally:
        load.finish()
    if data_path != "kernel":
        assert p.metric("helios_proxy_worker_client_moves_total", worker="0", direction="out") > 0
    # Quiet again: worker 1 is parked and gives its clients back.
    parked = _eventually(lambda: _awake(p).get(1) == 0.0 and
                         (_clients(p).get(1, -1) == 0 or data_path == "kernel"), timeout=20)
    assert parked, (_awake(p), _clients(p))
    for i, c in enumerate(conns):
        assert c.execute("SHOW statement_timeout").fetchone()[0] == f"{1001 + i}ms"
        assert c.execute("SELECT v FROM scaling_t WHERE id = %s", (i,)).fetchone()[0] == load.done[i]
    for c in conns:
        c.close()


def test_fixed_scaling_keeps_every_worker_awake_and_clients_where_they_logged_in(proxy_factory):
    p = proxy_factory(FIXED)
    conns = [_connect(p) for _ in range(N)]
    time.sleep(1.0)  # several rounds of the workers' hand-over checks
    clients = _clients(p)
    assert clients.get(0, 0) + clients.get(1, 0) == N
    assert clients == {w: float(sum(1 for c in conns if _login_worker(c) == w)) for w in (0, 1)}
    assert _awake(p) == {0: 1.0, 1: 1.0}
    assert _moves(p, "out") == 0
    for c in conns:
        assert c.execute("SELECT 1").fetchone()[0] == 1
        c.close()


def test_a_reload_to_fixed_wakes_the_parked_worker(proxy_factory):
    p = proxy_factory()  # the default follows the load
    assert "worker_scaling" not in p.config.get("proxy", {})
    assert _eventually(lambda: _awake(p) == {0: 1.0, 1: 0.0}, timeout=10), _awake(p)
    p.config["proxy"]["worker_scaling"] = "fixed"
    p.reload()
    assert _eventually(lambda: _awake(p) == {0: 1.0, 1: 1.0}, timeout=10), _awake(p)
