"""Same-host bypass with the real proxy and PostgreSQL on this host (issue 6, part 1).

The bypass is attached the way the proxy would attach it (SameHostBypass through
bench/kernel/kernel_tool bypass) for the proxy's listen port and the database port; clients and
the proxy's pool connect afterwards, so both hops (app -> proxy, proxy -> PostgreSQL) go through
sk_msg redirects instead of loopback TCP. The proxy runs its normal io_uring user-space path.
Skipped (with the reason) where the kernel or our privileges lack sockops/sk_msg/cgroup v2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "kernel"))

from harness import BENCH_USER, APP_USER, ConnInfo, ROLES, pgbench, psql, free_port  # noqa: E402
from kernel_tool import Bypass, KernelToolUnavailable  # noqa: E402

pytestmark = [pytest.mark.needs("kernel_data_path")]


def _attach(endpoints: list[str]) -> Bypass:
    if os.geteuid() != 0:
        pytest.skip("the same-host bypass needs root (CAP_BPF, CAP_NET_ADMIN, cgroup attach)")
    b = Bypass(endpoints, f"itest-{os.getpid()}")
    try:
        b.__enter__()
    except KernelToolUnavailable as e:
        pytest.skip(f"same-host bypass unavailable: {e}")
    return b


@pytest.mark.timeout(240)
def test_pgbench_through_the_proxy_with_both_hops_bypassed(pg, proxy_factory):
    lp = free_port(avoid={pg.port})
    b = _attach([f"127.0.0.1:{lp}=proxy", f"{pg.host}:{pg.port}=db"])
    try:
        # The proxy's own bypass ("auto") off: this test attaches one itself, and a socket can
        # be in one bypass map only (the proxy's would take the sockets and the counters).
        p = proxy_factory({"proxy": {"listen_address": f"127.0.0.1:{lp}",
                                     "same_host_bypass": False}})
        ci = p.conninfo(BENCH_USER, "bench")
        assert ci.port == lp
        r = psql(p.conninfo(APP_USER, "app"), "SELECT 41 + 1")
        assert r.rc == 0 and r.rows == [["42"]], r.stderr
        for protocol in ("simple", "extended", "prepared"):
            res = pgbench(ci, clients=8, jobs=2, seconds=3, select_only=True, protocol=protocol)
            assert res.clean, res.describe()
        # COPY both ways through the bypassed hops.
        copy = psql(p.conninfo(APP_USER, "app"), args=[
            "-c", "CREATE TEMP TABLE t(x int)",
            "-c", "COPY t FROM STDIN",
            "-c", "SELECT count(*), sum(x) FROM t"], input="1\n2\n3\n\\.\n")
        assert copy.rc == 0, copy.stderr
    finally:
        b.__exit__(None, None, None)
    st = b.stats
    # Both hops were bypassed: every pgbench client connection (2 ends each) and every pool
    # connection (2 ends each, proxy and PostgreSQL) went into the map, and data moved through
    # redirects, never through the not-a-peer path.
    assert st["added"] >= 2 * 8 + 2, st
    assert st["msgs_redirected"] > 1000, st
    assert st["bytes_redirected"] > 0, st
    assert st["add_failed"] == 0, st
    assert st["not_local"] == 0, st


@pytest.mark.timeout(120)
def test_connections_on_other_ports_are_not_touched(pg, proxy_factory):
    # The bypass lists only the database port; the proxy's clients (another port) stay on TCP.
    b = _attach([f"{pg.host}:{pg.port}=db"])
    try:
        p = proxy_factory({"proxy": {"same_host_bypass": False}})  # this test attaches its own
        r = psql(p.conninfo(APP_USER, "app"), "SELECT 1")
        assert r.rc == 0, r.stderr
        direct = ConnInfo(pg.host, pg.port, BENCH_USER, ROLES[BENCH_USER].password, "bench",
                          {"connect_timeout": 10})
        res = pgbench(direct, clients=2, jobs=1, transactions=200, select_only=True)
        assert res.clean, res.describe()
    finally:
        b.__exit__(None, None, None)
    st = b.stats
    # Sockets added: the proxy's pool connections and pgbench's direct ones, both ends each, all
    # to the database port; never the client -> proxy connection.
    assert st["added"] % 2 == 0 and st["added"] >= 2 * (1 + 2), st
    assert st["msgs_passed"] == 0, st
    assert st["msgs_redirected"] >= 2 * 200, st
