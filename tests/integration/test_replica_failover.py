"""Failover that keeps clients connected (issue 17): the primary stops while clients are idle,
idle inside a transaction, waiting for a statement, mid extended-protocol batch, and under a
50-client load; a replica is promoted. Transaction mode: nobody loses the connection; a client
whose transaction was open gets ErrorResponse 08006 and ReadyForQuery 'I'; a client outside a
transaction sees no error at all. Then the old primary comes back as a stale writer and gets no
write; and a host the proxy takes for the primary that restarted as a hot standby loses the role
at its first new connection (in_hot_standby), not at the next health check.

One ReplicaSet (a primary and one replica) for the module; the tests change its roles in order.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time

import psycopg
import pytest

from harness import APP_USER, ROLES, start_proxy, wait_until
from harness.replicaset import replica_set_with_table
from harness.util import as_postgres_argv, chown_postgres, pg_bin, run
from harness.wire import RawConn, message

pytestmark = [pytest.mark.needs("admin_api")]

INTERVAL_MS = 200  # health_check_interval of the failover test

LOAD_CLIENTS = 50  # the figure: a 50-client load across the failover


@pytest.fixture(scope="module")
def rs():
    with replica_set_with_table(1, "fo") as s:
        yield s


@pytest.fixture
def started():
    proxies = []
    yield proxies
    for p in proxies:
        try:
            if p.returncode is None:
                p.stop(expect_exit=None)
        finally:
            p.cleanup()


def proxy_for(rs, data_path, started, hosts, **backend):
    ov = {
        "backend": {"host": None, "port": None,
                    "hosts": [f"127.0.0.1:{n.port}" for n in hosts],
                    "health_check_interval": f"{INTERVAL_MS}ms", "ban_time": "1s",
                    "connection_timeout": "2s", "failover_timeout": "10s", **backend},
    }
    p = start_proxy(rs.primary, ov, data_path=data_path)
    started.append(p)
    return p


def stop_pg(node, mode: str) -> None:
    run(as_postgres_argv([pg_bin("pg_ctl"), "stop", "-D", str(node.datadir), "-m", mode, "-w"]),
        timeout=60)
    node._started = False


def hosts_by_port(proxy) -> dict[int, dict]:
    r = proxy.admin_get("/api/v1/hosts")
    return {int(h["address"].rsplit(":", 1)[1]): h for h in r.json()["hosts"]}


def insert_port(conn, v: int) -> int:
    return conn.execute("INSERT INTO fo (v) VALUES (%s) RETURNING inet_server_port()",
                        (v,)).fetchone()[0]


def in_background(fn):
    """Runs fn in a thread; returns a dict that gets 'value' or 'error' (and 'at')."""
    out: dict = {}

    def body():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            out["error"] = e
        out["at"] = time.monotonic()

    out["thread"] = threading.Thread(target=body, daemon=True)
    out["thread"].start()
    return out


async def load(conninfo: dict, clients: int, stop_at: float, stats: dict) -> None:
    """clients connections, each looping one autocommit INSERT (odd ones: a 2-statement
    transaction with a short sleep in it). Counts commits, errors (connection kept) and lost
    connections; records each client's first commit after stats['stopped_at'] is set."""

    async def one(i: int) -> None:
        conn = await psycopg.AsyncConnection.connect(autocommit=True, **conninfo)
        try:
            while time.monotonic() < stop_at:
                try:
                    if i % 2:
                        async with conn.transaction():
                            await conn.execute("INSERT INTO fo (v) VALUES (%s)", (i,))
                            await conn.execute("SELECT pg_sleep(0.02)")
                    else:
                        await conn.execute("INSERT INTO fo (v) VALUES (%s)", (i,))
                    stats["commits"] += 1
                    if stats.get("stopped_at") and i not in stats["after"]:
                        stats["after"][i] = time.monotonic()  # necessarily on the new primary
                except psycopg.Error as e:
                    if conn.closed:
                        stats["disconnects"].append(f"client {i}: {e!r}")
                        return
                    stats["errors"].append((i, e.sqlstate))
                    await asyncio.sleep(0.01)
        finally:
            await conn.close()

    await asyncio.gather(*(one(i) for i in range(clients)))


def parse(sql: str) -> bytes:
    return message(b"P", b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0))


def bind() -> bytes:
    return message(b"B", b"\0\0" + struct.pack("!HHH", 0, 0, 0))


def execute() -> bytes:
    return message(b"E", b"\0" + struct.pack("!I", 0))


@pytest.mark.timeout(90)
def test_failover_keeps_every_client_connected(rs, data_path, started):
    old, new = rs.primary, rs.replicas[0]
    proxy = proxy_for(rs, data_path, started, [old, new])
    wait_until(lambda: hosts_by_port(proxy)[old.port]["role"] == "primary", timeout=5)
    idle = proxy.connect()
    assert insert_port(idle, 1) == old.port
    in_tx = proxy.connect()
    in_tx.execute("BEGIN")
    in_tx.execute("INSERT INTO fo (v) VALUES (-1)")
    busy = proxy.connect()
    busy.execute("BEGIN")
    raw = RawConn(proxy.host, proxy.port)
    raw.login(APP_USER, ROLES[APP_USER].password, "app")

    stats = {"commits": 0, "errors": [], "disconnects": [], "after": {}}
    load_started = time.monotonic()
    loader = in_background(lambda: asyncio.run(load(
        proxy.conninfo(dbname="app").kwargs(), LOAD_CLIENTS, load_started + 7.0, stats)))
    time.sleep(1.0)
    # In flight when the server goes: a statement inside a transaction, and an extended-protocol
    # batch not ended by a Sync (Parse/Bind/Execute/Flush; the sleep runs).
    sleeper = in_background(lambda: busy.execute("SELECT pg_sleep(30)"))
    raw.send(parse("SELECT pg_sleep(30)") + bind() + message(b"H"))
    assert [raw.read_message().kind for _ in range(2)] == [b"1", b"2"]
    raw.send(execute() + message(b"H"))
    time.sleep(0.3)
    committed_before = stats["commits"]
    stop_pg(old, "immediate")
    stats["stopped_at"] = stopped_at = time.monotonic()

    # The statement in flight: 08006, then ReadyForQuery 'I'; the connection stays.
    sleeper["thread"].join(10)
    assert isinstance(sleeper.get("error"), psycopg.OperationalError), sleeper
    assert sleeper["error"].sqlstate == "08006"
    assert not busy.closed
    assert busy.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    # The batch without Sync: the error now, then the rest is skipped up to the Sync, whose
    # ReadyForQuery says Idle (exactly what PostgreSQL does after an error).
    m = raw.read_message()
    while m.kind == b"N":  # the server's own "terminating connection" warning, if it sent one
        m = raw.read_message()
    assert m.kind == b"E" and m.sqlstate == "08006", m
    raw.send(bind() + execute() + message(b"S"))
    m = raw.read_message()
    assert (m.kind, m.payload) == (b"Z", b"I"), m
    # Idle inside its transaction: its next statement is told, and it is outside a transaction.
    with pytest.raises(psycopg.OperationalError) as e:
        in_tx.execute("INSERT INTO fo (v) VALUES (-2)")
    assert e.value.sqlstate == "08006"
    assert not in_tx.closed
    assert in_tx.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    # An idle client's write waits for a primary (the old one refuses connections now).
    waiting = in_background(lambda: insert_port(idle, 2))
    time.sleep(0.5)
    promote_started = time.monotonic()
    new.promote()
    promoted_at = time.monotonic()
    waiting["thread"].join(15)
    assert waiting.get("value") == new.port, waiting
    for conn in (in_tx, busy):
        assert insert_port(conn, 3) == new.port
    _, errors = raw.simple_query("INSERT INTO fo (v) VALUES (4)")
    assert errors == []
    raw.close()

    loader["thread"].join(30)
    assert "error" not in loader, loader
    print(f"{LOAD_CLIENTS}-client load across the failover: {stats['commits']} commits "
          f"({committed_before} before the stop), {len(stats['errors'])} errors "
          f"{sorted({st for _, st in stats['errors']})}, {len(stats['disconnects'])} lost "
          f"connections; pg_ctl promote took {promoted_at - promote_started:.3f}s; first commit "
          f"through the proxy {min(stats['after'].values()) - promote_started:.3f}s after "
          f"pg_ctl promote started (all {LOAD_CLIENTS} clients by "
          f"{max(stats['after'].values()) - promote_started:.3f}s); the idle client's waiting "
          f"write {waiting['at'] - promote_started:.3f}s")
    assert stats["disconnects"] == []
    assert {st for _, st in stats["errors"]} <= {"08006"}
    assert len(stats["after"]) == LOAD_CLIENTS  # every client committed on the new primary
    # Only what was in flight fails: at most one error per client (the clients that then wait
    # for the new primary see none).
    per_client = [i for i, _ in stats["errors"]]
    assert len(per_client) == len(set(per_client)), stats["errors"]
    assert proxy.metric("helios_proxy_backend_losses_survived_total") >= 3

    # The old primary comes back as a stale writer: two hosts claim the role; the one chosen
    # before keeps it and the other gets no write.
    old._start_server()
    wait_until(lambda: hosts_by_port(proxy)[old.port]["role"] == "conflict", timeout=5)
    with proxy.connect() as c:
        for i in range(20):
            assert insert_port(c, 1000 + i) == new.port
            time.sleep(INTERVAL_MS / 1000 / 4)
    assert old.query("SELECT count(*) FROM fo WHERE v >= 1000", dbname="app")[0][0] == 0
    assert hosts_by_port(proxy)[new.port]["role"] == "primary"
    stop_pg(old, "fast")


@pytest.mark.timeout(60)
def test_a_primary_restarted_as_hot_standby_loses_the_role_at_its_first_connection(
        rs, data_path, started):
    # Whoever writes now (the replica promoted above, or the primary if that test did not run).
    writers = [n for n in rs.nodes
               if n._started and not n.query("SELECT pg_is_in_recovery()")[0][0]]
    if not writers:  # the failover test stopped before its promotion
        rs.replicas[0].promote()
        writers = [rs.replicas[0]]
    writer = writers[0]
    others = [n for n in rs.nodes if n is not writer]
    # Health checks far apart: only the connection's own in_hot_standby can tell.
    proxy = proxy_for(rs, data_path, started, [writer, *others], health_check_interval="60s",
                      failover_timeout="1s")
    wait_until(lambda: hosts_by_port(proxy)[writer.port]["role"] == "primary", timeout=5)
    with proxy.connect() as c:
        assert insert_port(c, 5) == writer.port
    # Cleanly stopped and started with standby.signal: a hot standby on the same address.
    stop_pg(writer, "fast")
    signal = writer.datadir / "standby.signal"
    signal.touch()
    chown_postgres(signal)
    writer._start_server()
    wait_until(lambda: writer.query("SELECT pg_is_in_recovery()")[0][0], timeout=30)
    with proxy.connect() as c:
        # Not 25006 from a standby taken for the primary: no primary is known any more.
        with pytest.raises(psycopg.OperationalError) as e:
            insert_port(c, 6)
        assert e.value.sqlstate == "08006", e.value
        assert "no primary" in str(e.value)
    assert hosts_by_port(proxy)[writer.port]["role"] != "primary"
    assert proxy.admin_get("/ready").status_code == 503
