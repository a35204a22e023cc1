"""Faults between the proxy and PostgreSQL (issue 14): latency, loss, resets, a blackholed
backend, PostgreSQL killed and restarted, PostgreSQL full.

Topology (module fixture `net`; names carry the pid so parallel runs do not collide):

    root netns: proxy, clients, veth hfh<pid> 10.213.N.1/24
    netns hflt-<pid>: veth hfn<pid> 10.213.N.2/24, a PostgreSQL listening on 10.213.N.2

Every byte between the proxy and PostgreSQL crosses the veth pair, and every fault is made inside
the namespace (tc on hfn<pid>, nftables table `inet hfault`), so deleting it removes them all.
Latency and loss use tc netem where the kernel has it; a kernel without netem
(CONFIG_NET_SCH_NETEM off) gets the same loss from nftables (`numgen random`), and for latency a
tbf slow link (tbf has no fixed delay, so the check there is on a result large enough to take
>= 200 ms through the link).

Each test checks what a user would: no client waits past its timeouts (every read is bounded),
errors are ErrorResponses with a SQLSTATE (never a silent close), and afterwards the proxy answers
/health and new clients, and PostgreSQL has no idle-in-transaction backend left.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

import pytest

from edge_helpers import in_netns, sh
from harness import APP_USER, ROLES, PgCluster, start_proxy
from harness.proxy import DataPathUnavailable
from harness.wire import LoginError, RawConn, query_message

PID = os.getpid() % 100000
SUBNET = 213
NET_N = PID % 250
HOST_IP = f"10.{SUBNET}.{NET_N}.1"
PG_IP = f"10.{SUBNET}.{NET_N}.2"
NS = f"hflt-{PID}"
HOST_IF = f"hfh{PID}"[:15]
NS_IF = f"hfn{PID}"[:15]
PG_MAX_CONNECTIONS = 20  # 17 for ordinary roles (3 superuser_reserved_connections)

# Timeouts the proxy runs with in this file; the bounds below follow from them.
CONNECT_TIMEOUT = 2.0
ACQUIRE_TIMEOUT = 3.0
# The longest a client may wait for an answer when the backend is unreachable: a connect attempt
# plus the acquire timeout plus slack for a loaded machine.
ERROR_BOUND = CONNECT_TIMEOUT + ACQUIRE_TIMEOUT + 3.0
CONNECTION_CLASS = ("08",)  # connection exception
ACCEPTED_FAULT_STATES = {"57P01", "57P02", "57P03", "53300"}


def why_no_faults() -> Optional[str]:
    if os.geteuid() != 0:
        return "needs root (network namespaces, tc, nftables)"
    for tool in ("ip", "nsenter", "tc", "nft"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} not installed (the fault suite needs it)"
    return None


class FaultCluster(PgCluster):
    """The harness cluster, also reachable (SCRAM) from the root-namespace end of the veth."""

    def _initdb(self) -> None:
        super()._initdb()
        hba = self.datadir / "pg_hba.conf"
        hba.write_text(hba.read_text() + f"host all all {HOST_IP}/32 scram-sha-256\n")


class FaultNet:
    def __init__(self) -> None:
        self.made_ns = False
        self.pg: Optional[FaultCluster] = None
        self.has_netem = self.has_tbf = False
        self.why_no_nft: Optional[str] = None

    def ns(self, argv, **kw) -> subprocess.CompletedProcess:
        return sh(["nsenter", f"--net=/run/netns/{NS}", *argv], **kw)

    def create(self) -> "FaultNet":
        sh(["ip", "netns", "add", NS])
        self.made_ns = True
        sh(["ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF, "netns", NS])
        sh(["ip", "addr", "add", f"{HOST_IP}/24", "dev", HOST_IF])
        sh(["ip", "link", "set", HOST_IF, "up"])
        self.ns(["ip", "link", "set", "lo", "up"])
        self.ns(["ip", "addr", "add", f"{PG_IP}/24", "dev", NS_IF])
        self.ns(["ip", "link", "set", NS_IF, "up"])
        cp = self.ns(["tc", "qdisc", "add", "dev", NS_IF, "root", "netem", "delay", "1ms"],
                     check=False)
        self.has_netem = cp.returncode == 0
        self.ns(["tc", "qdisc", "del", "dev", NS_IF, "root"], check=False)
        cp = self.ns(["tc", "qdisc", "add", "dev", NS_IF, "root", "tbf", "rate", "1mbit", "burst",
                      "4kb", "latency", "1s"], check=False)
        self.has_tbf = cp.returncode == 0
        self.ns(["tc", "qdisc", "del", "dev", NS_IF, "root"], check=False)
        cp = self.ns(["nft", "add", "table", "inet", "hprobe"], check=False)
        self.why_no_nft = None if cp.returncode == 0 else (
            "this kernel refuses nftables tables: " + cp.stderr.strip())
        self.ns(["nft", "delete", "table", "inet", "hprobe"], check=False)
        self.pg = FaultCluster(max_connections=PG_MAX_CONNECTIONS, host=PG_IP)
        with in_netns(NS):
            self.pg.start()
        return self

    def close(self) -> None:
        if self.pg is not None:
            self.pg.stop()
        if self.made_ns:
            sh(["ip", "link", "del", HOST_IF], check=False)
            sh(["ip", "netns", "del", NS], check=False)

    # -- faults ----------------------------------------------------------------------------------
    def nft(self, input: str = "", output: str = "") -> None:
        """Installs rules for the namespace's input and output hooks (table inet hfault),
        replacing what was there."""
        if self.why_no_nft:
            pytest.skip(self.why_no_nft)
        self.clear_nft()
        text = f"""
table inet hfault {{
  chain input {{ type filter hook input priority 0; policy accept;
    {input}
  }}
  chain output {{ type filter hook output priority 0; policy accept;
    {output}
  }}
}}
"""
        self.ns(["nft", "-f", "-"], input=text)

    def clear_nft(self) -> None:
        self.ns(["nft", "delete", "table", "inet", "hfault"], check=False)

    def tc(self, *args: str) -> None:
        self.ns(["tc", "qdisc", "replace", "dev", NS_IF, "root", *args])

    def clear_tc(self) -> None:
        self.ns(["tc", "qdisc", "del", "dev", NS_IF, "root"], check=False)

    def clear(self) -> None:
        self.clear_nft()
        self.clear_tc()

    # -- PostgreSQL ------------------------------------------------------------------------------
    def postmaster_pid(self) -> int:
        return int((self.pg.datadir / "postmaster.pid").read_text().splitlines()[0])

    def restart_pg(self, timeout: float = 30.0) -> None:
        """Starts the killed cluster again on its port (orphaned backends may still hold the
        shared memory for a moment after the postmaster died: retry until they are gone)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with in_netns(NS):
                    self.pg._start_server()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


@pytest.fixture(scope="module")
def net():
    why = why_no_faults()
    if why:
        pytest.skip(why)
    n = FaultNet()
    try:
        n.create()
        yield n
    finally:
        n.close()


@pytest.fixture
def fault_proxy(net, data_path):
    """fault_proxy(**sections) -> a proxy whose backend is the namespace's PostgreSQL; faults
    are removed and the proxy stopped (exit status 0) at teardown."""
    started = []

    def factory(**sections):
        cfg = {
            "backend": {"connection_timeout": f"{CONNECT_TIMEOUT:g}s", "max_connections": 5},
            "connection_pool": {"acquire_timeout": f"{ACQUIRE_TIMEOUT:g}s"},
        }
        for k, v in sections.items():
            cfg.setdefault(k, {}).update(v)
        try:
            p = start_proxy(net.pg, cfg, data_path=data_path)
        except DataPathUnavailable as e:
            pytest.skip(str(e))
        started.append(p)
        return p

    yield factory
    net.clear()
    for p in started:
        try:
            if p.returncode is None:
                p.stop(expect_exit=0)
        finally:
            p.cleanup()


# -- client helpers (every wait bounded) -----------------------------------------------------------

class Outcome:
    def __init__(self, rows=None, sqlstate=None, message="", closed=False, hung=False,
                 elapsed=0.0):
        self.rows, self.sqlstate, self.message = rows, sqlstate, message
        self.closed, self.hung, self.elapsed = closed, hung, elapsed

    @property
    def ok(self) -> bool:
        return self.rows is not None and self.sqlstate is None

    def __repr__(self) -> str:
        return (f"Outcome(rows={str(self.rows)[:60]}, sqlstate={self.sqlstate}, "
                f"msg={self.message!r}, closed={self.closed}, hung={self.hung}, "
                f"{self.elapsed:.2f}s)")


def login(proxy, user: str = APP_USER, timeout: float = ERROR_BOUND) -> tuple[Optional[RawConn],
                                                                             Outcome]:
    t0 = time.monotonic()
    c = RawConn(proxy.host, proxy.port, timeout=timeout)
    try:
        c.login(user, ROLES[user].password, "app", timeout=timeout)
        return c, Outcome(rows=[], elapsed=time.monotonic() - t0)
    except LoginError as e:
        c.close()
        return None, Outcome(sqlstate=e.sqlstate, message=e.fields.get("M", ""),
                             elapsed=time.monotonic() - t0)
    except (TimeoutError, socket.timeout):
        c.close()
        return None, Outcome(hung=True, elapsed=time.monotonic() - t0)
    except (ConnectionError, OSError) as e:
        c.close()
        return None, Outcome(closed=True, message=str(e), elapsed=time.monotonic() - t0)


def query(c: RawConn, sql: str, timeout: float = ERROR_BOUND) -> Outcome:
    from harness.wire import data_row_values

    t0 = time.monotonic()
    try:
        c.send(query_message(sql))
    except OSError as e:
        return Outcome(closed=True, message=str(e))
    ex = c.read_response(timeout)
    out = Outcome(elapsed=time.monotonic() - t0, closed=ex.closed)
    if ex.errors:
        f = ex.errors[0].fields()
        out.sqlstate, out.message = f.get("C"), f.get("M", "")
    elif any(m.kind == b"Z" for m in ex.messages):
        out.rows = [data_row_values(m.payload) for m in ex.messages if m.kind == b"D"]
    elif not ex.closed:
        out.hung = True
    return out


def new_client(proxy, sql: str = "SELECT 1") -> Outcome:
    """A new client's first query; the login itself may succeed without PostgreSQL (the proxy
    caches auth_query answers) or fail: either way the outcome that reached the client."""
    c, o = login(proxy)
    if c is None:
        return o
    with c:
        return query(c, sql)


def assert_clean_error(o: Outcome, what: str, bound: float = ERROR_BOUND) -> None:
    assert not o.hung, f"{what}: no answer within {bound:.0f}s: {o}"
    assert o.elapsed <= bound, f"{what}: answered after {o.elapsed:.1f}s (bound {bound:.0f}s): {o}"
    assert o.sqlstate is not None, f"{what}: closed without an ErrorResponse: {o}"
    assert (o.sqlstate.startswith(CONNECTION_CLASS) or o.sqlstate in ACCEPTED_FAULT_STATES), \
        f"{what}: unexpected SQLSTATE: {o}"


def select_one(proxy, user: str = APP_USER, timeout: float = 10.0) -> Outcome:
    c, o = login(proxy, user, timeout)
    if c is None:
        return o
    with c:
        return query(c, "SELECT 1", timeout)


def wait_serving(proxy, timeout: float = 15.0) -> Outcome:
    deadline = time.monotonic() + timeout
    while True:
        o = select_one(proxy, timeout=5.0)
        if o.ok or time.monotonic() > deadline:
            return o
        time.sleep(0.2)


def assert_nothing_left(net, proxy) -> None:
    """The proxy answers /health and a new client; PostgreSQL has no backend idle in a
    transaction (a rolled-back lease would show as 'idle in transaction' if it leaked)."""
    r = proxy.admin_get("/health", timeout=5)
    assert r.status_code == 200, r.text
    o = wait_serving(proxy)
    assert o.ok and o.rows == [["1"]], f"new client after the fault: {o}"
    deadline = time.monotonic() + 10
    while True:
        stuck = [b for b in net.pg.backends() if b["state"] and "transaction" in b["state"]]
        if not stuck or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not stuck, f"backends left in a transaction: {stuck}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def large_result_sql(n: int) -> str:
    return (f"SELECT string_agg(md5(i::text), '' ORDER BY i) FROM generate_series(1, {n}) i")


def large_result_expected(n: int) -> str:
    return "".join(hashlib.md5(str(i).encode()).hexdigest() for i in range(1, n + 1))


# -- the faults ----------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_latency_makes_queries_slower_but_correct(net, fault_proxy):
    proxy = fault_proxy()
    c, o = login(proxy)
    assert c is not None, o
    with c:
        n = 2000  # 64 KB of text: >= 200 ms through the slow link
        base = query(c, large_result_sql(n))
        assert base.ok and base.rows == [[large_result_expected(n)]], base
        if net.has_netem:
            net.tc("netem", "delay", "200ms")
        elif net.has_tbf:
            net.tc("tbf", "rate", "1mbit", "burst", "4kb", "latency", "2s")
        else:
            pytest.skip("this kernel has neither the netem nor the tbf qdisc")
        for _ in range(3):
            slow = query(c, large_result_sql(n), timeout=15)
            assert slow.ok and slow.rows == [[large_result_expected(n)]], slow
            assert slow.elapsed >= 0.2, f"no added latency: {slow} (fault-free {base.elapsed:.3f}s)"
        small = query(c, "SELECT 'still exact'", timeout=15)
        assert small.ok and small.rows == [["still exact"]], small
        if net.has_netem:
            assert small.elapsed >= 0.2, small
        net.clear_tc()
    assert_nothing_left(net, proxy)


@pytest.mark.timeout(60)
def test_packet_loss_queries_still_succeed(net, fault_proxy):
    proxy = fault_proxy()
    conns = []
    for _ in range(4):
        c, o = login(proxy)
        assert c is not None, o
        conns.append(c)
    assert query(conns[0], "SELECT 1").ok
    if net.has_netem:
        net.tc("netem", "loss", "10%")
    else:
        drop = "numgen random mod 100 < 10 drop"
        net.nft(input=drop, output=drop)
    results: list[Outcome] = []
    lock = threading.Lock()

    def worker(c: RawConn, k: int) -> None:
        for i in range(8):
            o = query(c, f"SELECT {k} * 100 + {i}, repeat('x', 3000)", timeout=20)
            with lock:
                results.append(o)
            if o.ok:
                assert o.rows[0][0] == str(k * 100 + i)

    threads = [threading.Thread(target=worker, args=(c, k)) for k, c in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert not any(t.is_alive() for t in threads), "a client is still waiting after 40 s"
    bad = [o for o in results if not o.ok]
    assert len(results) == 32 and not bad, f"queries failed under 10% loss: {bad}"
    net.clear()
    for c in conns:
        c.close()
    assert_nothing_left(net, proxy)


@pytest.mark.timeout(60)
def test_tcp_resets_give_clean_errors_and_clients_recover(net, fault_proxy):
    proxy = fault_proxy()
    idle, o = login(proxy)  # logged in, outside any transaction while the fault lasts
    assert idle is not None, o
    busy, o = login(proxy)
    assert busy is not None, o
    assert query(idle, "SELECT 1").ok and query(busy, "SELECT 1").ok
    net.nft(f"tcp dport {net.pg.port} reject with tcp reset")
    o = query(busy, "SELECT 'through a reset backend'")
    assert_clean_error(o, "query on a pooled backend whose connection is reset")
    assert_clean_error(new_client(proxy), "new client while PostgreSQL resets every connection")
    net.clear_nft()
    # The client that stayed idle keeps its session and is served again.
    deadline = time.monotonic() + 10
    while True:
        again = query(idle, "SELECT 'idle client after resets'")
        if again.ok or again.closed or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert again.ok and again.rows == [["idle client after resets"]], again
    idle.close()
    busy.close()
    assert_nothing_left(net, proxy)


@pytest.mark.timeout(60)
def test_blackholed_backend_gives_clean_error_without_hanging(net, fault_proxy):
    # tcp_user_timeout (default 30 s) bounds how long bytes may go unacknowledged; shorter here.
    proxy = fault_proxy(backend={"tcp_user_timeout": f"{CONNECT_TIMEOUT:g}s"})
    warm, o = login(proxy)
    assert warm is not None, o
    assert query(warm, "SELECT 1").ok  # the pool now holds an idle backend
    net.nft(input=f"tcp dport {net.pg.port} drop", output=f"tcp sport {net.pg.port} drop")
    # A query on the pooled backend: the bytes go nowhere.
    o = query(warm, "SELECT 'into the void'")
    assert_clean_error(o, "query on a pooled backend after the network went silent")
    # A new login needs a new backend: its connect times out.
    assert_clean_error(new_client(proxy), "new client while PostgreSQL is unreachable")
    net.clear_nft()
    warm.close()
    assert_nothing_left(net, proxy)


@pytest.mark.timeout(90)
def test_postgres_killed_and_restarted(net, fault_proxy):
    proxy = fault_proxy()
    clients = []
    for _ in range(3):
        c, o = login(proxy)
        assert c is not None, o
        assert query(c, "SELECT 1").ok
        clients.append(c)
    intx = clients[0]
    assert query(intx, "BEGIN").ok and query(intx, "SELECT txid_current()").ok
    backend_pids = [b["pid"] for b in net.pg.backends()]
    os.kill(net.postmaster_pid(), signal.SIGKILL)
    try:
        # Backends notice their postmaster's death on their own, a moment later.
        deadline = time.monotonic() + 10
        while any(pid_alive(p) for p in backend_pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        o = query(intx, "SELECT 'after the crash'")
        assert_clean_error(o, "query in a transaction when PostgreSQL was killed")
        o = query(clients[1], "SELECT 'while PostgreSQL is down'")
        assert_clean_error(o, "query while PostgreSQL is down")
    finally:
        net.restart_pg()
    # Clients that were outside a transaction keep working once PostgreSQL is back.
    deadline = time.monotonic() + 15
    while True:
        o = query(clients[2], "SELECT 'back'")
        if o.ok or o.closed or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert o.ok and o.rows == [["back"]], o
    for c in clients:
        c.close()
    assert_nothing_left(net, proxy)


@pytest.mark.timeout(60)
def test_postgres_full_gives_53300(net, fault_proxy):
    import psycopg

    proxy = fault_proxy()
    hogs, clients = [], []
    try:
        while len(hogs) < PG_MAX_CONNECTIONS:
            try:
                hogs.append(psycopg.connect(**net.pg.conninfo(APP_USER, "app"),
                                            connect_timeout=5, autocommit=True))
            except psycopg.OperationalError as e:
                assert "too many clients" in str(e) or "reserved" in str(e), e
                break
        assert len(hogs) < PG_MAX_CONNECTIONS, "PostgreSQL never refused a connection"
        # Clients that each hold a transaction need a backend each: the proxy has at most what
        # it opened before PostgreSQL filled up, so some must be refused, cleanly, with 53300.
        refused = []
        for _ in range(3):
            c, o = login(proxy)
            if c is not None:
                clients.append(c)
                o = query(c, "BEGIN")
                if o.ok:
                    o = query(c, "SELECT 'in a transaction'")
            if not o.ok:
                assert_clean_error(o, "client while PostgreSQL is full")
                refused.append(o)
        assert refused, "no client was refused although PostgreSQL is full"
        assert all(o.sqlstate == "53300" for o in refused), refused
        # The message says why: PostgreSQL's own refusal, not "all connections in use".
        assert all("too many clients" in o.message or "slots are reserved" in o.message
                   for o in refused), refused
    finally:
        for c in clients:
            c.close()
        for h in hogs:
            h.close()
    assert_nothing_left(net, proxy)
