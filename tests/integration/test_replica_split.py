"""Primary and replicas (issue 17): [backend] hosts, role discovery, lag-aware read/write split,
bans, and a promoted replica found without a restart.

One ReplicaSet (a primary and two streaming replicas made with pg_basebackup -R) for the module;
the failover test runs last because it promotes a replica and stops the primary.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import psycopg
import pytest

from harness import APP_USER, ROLES, helios_binary, pgbench, start_proxy, wait_until
from harness.replicaset import replica_set_with_table
from harness.util import as_postgres_argv, pg_bin, run
from harness.wire import RawConn

pytestmark = [pytest.mark.needs("admin_api")]

INTERVAL_S = 0.2  # health_check_interval of these tests


@pytest.fixture(scope="module")
def rs():
    with replica_set_with_table(2, "rw", pgbench_scale=1) as s:
        yield s


@pytest.fixture
def split_proxy(rs, data_path):
    started = []

    def factory(split: bool = True, routing: dict | None = None, extra: dict | None = None,
                **backend):
        # The primary is listed between the replicas: its role is discovered, not assumed.
        hosts = [rs.replicas[0], rs.primary, rs.replicas[1]]
        ov = {
            "backend": {"host": None, "port": None,
                        "hosts": [f"127.0.0.1:{n.port}" for n in hosts],
                        "health_check_interval": f"{int(INTERVAL_S * 1000)}ms",
                        "ban_time": "2s", "max_replica_lag": "1s",
                        "connection_timeout": "2s", **backend},
            "routing": {"read_write_split": split, **(routing or {})},
            **(extra or {}),
        }
        p = start_proxy(rs.primary, ov, data_path=data_path)
        started.append(p)
        return p

    yield factory
    for p in started:
        try:
            if p.returncode is None:
                p.stop(expect_exit=None)
        finally:
            p.cleanup()


def ports_of_reads(proxy, n: int = 20) -> list[int]:
    with proxy.connect(dbname="app") as c:
        return [c.execute("SELECT inet_server_port()").fetchone()[0] for _ in range(n)]


def heliosctl_hosts(proxy) -> subprocess.CompletedProcess:
    env = dict(os.environ, HELIOS_ADMIN_URL=proxy.admin_url,
               HELIOS_ADMIN_TOKEN_FILE=str(proxy.admin_token_file))
    env.pop("HELIOS_ADMIN_TOKEN", None)
    return subprocess.run([str(helios_binary().parent / "heliosctl"), "hosts"],
                          capture_output=True, text=True, timeout=30, env=env)


def hosts_by_port(proxy) -> dict[int, dict]:
    r = proxy.admin_get("/api/v1/hosts")
    return {int(h["address"].rsplit(":", 1)[1]): h for h in r.json()["hosts"]}


@pytest.mark.timeout(60)
def test_split_sends_reads_to_replicas_and_writes_to_the_primary(rs, split_proxy):
    proxy = split_proxy()
    replica_ports = {r.port for r in rs.replicas}
    roles = hosts_by_port(proxy)
    assert roles[rs.primary.port]["role"] == "primary"
    assert all(roles[p]["role"] == "replica" for p in replica_ports)
    ctl = heliosctl_hosts(proxy)
    assert ctl.returncode == 0, ctl.stderr
    assert f"127.0.0.1:{rs.primary.port}" in ctl.stdout and "primary" in ctl.stdout
    assert set(ports_of_reads(proxy)) <= replica_ports
    with proxy.connect(dbname="app") as c:
        c.execute("BEGIN READ ONLY")
        assert c.execute("SELECT inet_server_port()").fetchone()[0] in replica_ports
        c.execute("COMMIT")
    with proxy.connect(dbname="app") as c:
        # A write, a function that writes (nextval), a hint, and a read-write transaction.
        assert c.execute("INSERT INTO rw (v) VALUES (1) RETURNING inet_server_port()"
                         ).fetchone()[0] == rs.primary.port
        assert c.execute("SELECT nextval('rw_id_seq'), inet_server_port()"
                         ).fetchone()[1] == rs.primary.port
        assert c.execute("/* helios:primary */ SELECT inet_server_port()"
                         ).fetchone()[0] == rs.primary.port
        with c.transaction():
            assert c.execute("SELECT inet_server_port()").fetchone()[0] == rs.primary.port
    # pgbench -S (extended protocol, prepared) lands on the replicas; tpcb-like writes on the
    # primary without a single 25006 (a write sent to a replica would fail).
    before = hosts_by_port(proxy)
    ci = proxy.conninfo(dbname="bench", user="bench")
    r = pgbench(ci, clients=4, seconds=3, select_only=True, protocol="prepared")
    assert r.rc == 0 and r.failed == 0 and r.processed > 0, r.stderr
    after = hosts_by_port(proxy)
    to_replicas = sum(after[p]["routed"] - before[p]["routed"] for p in replica_ports)
    assert to_replicas >= r.processed
    r = pgbench(ci, clients=4, seconds=2)
    assert r.rc == 0 and r.failed == 0 and r.processed > 0, r.stderr


@pytest.mark.timeout(60)
def test_split_off_sends_everything_to_the_discovered_primary(rs, split_proxy):
    proxy = split_proxy(split=False)
    assert set(ports_of_reads(proxy, 5)) == {rs.primary.port}
    # A reload cannot change the host list (pools are per host index): refused, config kept.
    proxy.config["backend"]["hosts"] = list(reversed(proxy.config["backend"]["hosts"]))
    proxy.write_config()
    r = proxy.admin_post("/api/v1/reload")
    assert r.json()["ok"] is False and "restart" in r.text
    assert set(ports_of_reads(proxy, 5)) == {rs.primary.port}


@pytest.mark.timeout(60)
def test_paused_replica_gets_no_reads_until_it_resumes(rs, split_proxy):
    proxy = split_proxy()
    paused = rs.replicas[0]
    paused.pause_replay()
    try:
        # WAL the paused replica cannot replay: it lags.
        for i in range(5):
            rs.primary.query("INSERT INTO rw (v) VALUES (%s)", (i,), dbname="app")
        wait_until(lambda: hosts_by_port(proxy)[paused.port]["lagging"], timeout=INTERVAL_S * 5)
        assert paused.port not in set(ports_of_reads(proxy))
    finally:
        paused.resume_replay()
    wait_until(lambda: not hosts_by_port(proxy)[paused.port]["lagging"], timeout=5)
    # Both replicas idle: ties go to the first readable one, the resumed replica.
    assert paused.port in set(ports_of_reads(proxy))


@pytest.mark.timeout(60)
def test_replica_killed_mid_read_errors_then_is_banned_and_returns(rs, split_proxy):
    proxy = split_proxy()
    victim = rs.replicas[0]
    with proxy.connect(dbname="app") as c:
        assert c.execute("SELECT inet_server_port()").fetchone()[0] == victim.port
        started = time.monotonic()

        def kill_soon():
            time.sleep(0.5)
            run(as_postgres_argv([pg_bin("pg_ctl"), "stop", "-D", str(victim.datadir), "-m",
                                  "immediate", "-w"]), timeout=30, check=False)

        t = threading.Thread(target=kill_soon)
        t.start()
        # Either the read fails with a connection-class error, or (nothing reached the client
        # yet) the proxy re-runs it on another backend: the other replica. Never a hang.
        try:
            port = c.execute("SELECT inet_server_port(), (SELECT count(*) FROM "
                             "generate_series(1, 30000000))").fetchone()[0]
            assert port == rs.replicas[1].port
        except psycopg.OperationalError as e:
            assert e.sqlstate is None or e.sqlstate.startswith(("08", "57")), e
        t.join()
        assert time.monotonic() - started < 30
    wait_until(lambda: hosts_by_port(proxy)[victim.port]["banned"], timeout=5)
    assert set(ports_of_reads(proxy)) == {rs.replicas[1].port}
    victim._start_server()
    wait_until(lambda: victim.in_recovery(), timeout=30)
    wait_until(lambda: not hosts_by_port(proxy)[victim.port]["banned"]
               and hosts_by_port(proxy)[victim.port]["role"] == "replica", timeout=10)


@pytest.mark.timeout(60)
def test_write_hidden_in_a_view_runs_again_on_the_primary(rs, split_proxy):
    # The classifier proves "SELECT ... FROM logged_port" read-only (a view is a name, not a
    # function call), but the view calls a function that writes: a replica refuses it (25006).
    rs.primary.query("CREATE OR REPLACE FUNCTION log_read() RETURNS int LANGUAGE plpgsql AS "
                     "$$ BEGIN INSERT INTO rw (v) VALUES (-7); RETURN inet_server_port(); END $$",
                     dbname="app")
    rs.primary.query("CREATE OR REPLACE VIEW logged_port AS SELECT log_read() AS port",
                     dbname="app")
    rs.primary.query("GRANT SELECT ON logged_port TO PUBLIC", dbname="app")
    rs.wait_caught_up()
    proxy = split_proxy()
    replica_ports = {r.port for r in rs.replicas}
    assert set(ports_of_reads(proxy, 5)) <= replica_ports
    retries = "helios_proxy_replica_write_retries_total"
    assert proxy.metric(retries) == 0
    # Nothing of the replica's refusal reached the client: the statement ran on the primary,
    # with the extended protocol (psycopg) and a simple Query.
    with proxy.connect(dbname="app") as c:
        assert c.execute("SELECT port FROM logged_port").fetchone()[0] == rs.primary.port
    with RawConn(proxy.host, proxy.port) as raw:
        raw.login(APP_USER, ROLES[APP_USER].password, "app")
        rows, errors = raw.simple_query("SELECT port FROM logged_port")
        assert errors == [] and rows == [[str(rs.primary.port)]]
    assert proxy.metric(retries) == 2
    # Inside a read-only transaction the refusal is the client's own: 25006 reaches it.
    with proxy.connect(dbname="app") as c:
        c.execute("BEGIN READ ONLY")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("SELECT port FROM logged_port")
        c.execute("ROLLBACK")
    assert proxy.metric(retries) == 2


def tenant_rule(pattern: str, split: bool) -> dict:
    return {"tenant_quotas": {"enabled": True, "identifier": "application_name",
                              "limits": [{"tenant_pattern": pattern, "read_write_split": split}]}}


@pytest.mark.timeout(60)
def test_read_write_split_per_tenant_rule(rs, split_proxy):
    replica_ports = {r.port for r in rs.replicas}

    def ports(proxy, tenant: str) -> set:
        with proxy.connect(dbname="app", application_name=tenant) as c:
            return {c.execute("SELECT inet_server_port()").fetchone()[0] for _ in range(10)}

    # Off globally, on for one tenant's rule.
    proxy = split_proxy(split=False, extra=tenant_rule("reports_*", True))
    assert ports(proxy, "reports_daily") <= replica_ports
    assert ports(proxy, "web") == {rs.primary.port}
    proxy.stop()
    # On globally, off for one tenant's rule (its reads must see its writes at once, say).
    proxy = split_proxy(split=True, extra=tenant_rule("ledger", False))
    assert ports(proxy, "ledger") == {rs.primary.port}
    assert ports(proxy, "web") <= replica_ports


def insert_then_select(proxy, n: int, base: int, replica_ports: set) -> tuple[int, int]:
    """n times: insert a row, then at once read it back through the split. (misses, replica reads)"""
    misses = on_replica = 0
    with proxy.connect(dbname="app") as c:
        for i in range(n):
            c.execute("INSERT INTO rw (v) VALUES (%s)", (base + i,))
            port, found = c.execute("SELECT inet_server_port(), (SELECT count(*) FROM rw "
                                    "WHERE v = %s)", (base + i,)).fetchone()
            misses += found == 0
            on_replica += port in replica_ports
    return misses, on_replica


@pytest.mark.timeout(90)
def test_read_your_writes_with_lagging_replicas(rs, split_proxy):
    for r in rs.replicas:  # about 100 ms of replication lag
        r.query("ALTER SYSTEM SET recovery_min_apply_delay = '100ms'")
        r.query("SELECT pg_reload_conf()")
    replica_ports = {r.port for r in rs.replicas}
    try:
        # Control: without read-your-writes the same loop reads stale data from the replicas.
        off = split_proxy(routing={"read_your_writes": False})
        stale, _ = insert_then_select(off, 100, 9_000_000, replica_ports)
        assert stale > 0
        off.stop()
        proxy = split_proxy()
        misses, on_replica = insert_then_select(proxy, 1000, 10_000_000, replica_ports)
        print(f"read-your-writes: 1000 insert-then-select, {misses} misses, "
              f"{on_replica} reads on replicas")
        assert misses == 0
        # Not "always the primary": once a check after the last write saw the replicas replay
        # it, that client's reads go to a replica again.
        with proxy.connect(dbname="app") as c:
            c.execute("INSERT INTO rw (v) VALUES (0)")
            time.sleep(INTERVAL_S * 2 + 0.3)
            assert c.execute("SELECT inet_server_port()").fetchone()[0] in replica_ports
    finally:
        for r in rs.replicas:
            r.query("ALTER SYSTEM RESET recovery_min_apply_delay")
            r.query("SELECT pg_reload_conf()")


@pytest.mark.timeout(90)
def test_failover_waits_for_the_promoted_replica_without_restart(rs, split_proxy):
    proxy = split_proxy(failover_timeout="1500ms")
    new_primary = rs.replicas[1]
    with proxy.connect(dbname="app") as idle_client, proxy.connect(dbname="app") as in_tx:
        assert idle_client.execute("SELECT 1").fetchone() == (1,)
        in_tx.execute("BEGIN")
        in_tx.execute("INSERT INTO rw (v) VALUES (-1)")
        run(as_postgres_argv([pg_bin("pg_ctl"), "stop", "-D", str(rs.primary.datadir), "-m",
                              "immediate", "-w"]), timeout=30)
        # The transaction open on the primary is lost: a connection-class error.
        with pytest.raises(psycopg.Error) as e:
            in_tx.execute("INSERT INTO rw (v) VALUES (-2)")
        assert e.value.sqlstate is None or e.value.sqlstate.startswith(("08", "57")), e.value
        if in_tx.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            in_tx.execute("ROLLBACK")
        wait_until(lambda: proxy.admin_get("/ready").status_code == 503, timeout=5)
        assert heliosctl_hosts(proxy).returncode == 1  # no primary known
        # No primary: a write waits failover_timeout, then fails cleanly (08006); a read still
        # goes to a replica; the client stays connected.
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as e:
            idle_client.execute("INSERT INTO rw (v) VALUES (0)")
        assert e.value.sqlstate == "08006"
        assert time.monotonic() - t0 >= 1.2
        assert idle_client.execute("SELECT 1").fetchone() == (1,)
        # A write that starts waiting before the promotion commits once the new primary is found.
        result: dict = {}

        def writer():
            try:
                result["port"] = idle_client.execute(
                    "INSERT INTO rw (v) VALUES (1) RETURNING inet_server_port()").fetchone()[0]
                result["at"] = time.monotonic()
            except psycopg.Error as ex:  # reported below
                result["error"] = ex

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.1)
        new_primary.promote()
        promoted_at = time.monotonic()
        t.join(10)
        assert "error" not in result, result
        assert result["port"] == new_primary.port
        print(f"first committed write through the proxy {result['at'] - promoted_at:.3f}s after "
              f"pg_ctl promote returned (a write already waiting for a primary)")
        assert hosts_by_port(proxy)[new_primary.port]["role"] == "primary"
        assert proxy.admin_get("/ready").status_code == 200
        # The client whose transaction died with the primary kept its connection
        # (test_replica_failover.py covers every client state).
        assert in_tx.execute("SELECT 1").fetchone() == (1,)
