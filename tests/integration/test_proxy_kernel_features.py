"""The proxy attaches its kernel features from its own config ([proxy] same_host_bypass, [vip],
[edge]) and runs without any of them, with one log line and a metric, when the kernel refuses."""

from __future__ import annotations

import os
import socket

import psycopg
import pytest

from harness import BENCH_USER, pgbench
from harness.util import free_port

ROOT = os.geteuid() == 0


def feature(proxy, name):
    return proxy.metric("helios_proxy_kernel_feature", feature=name)


@pytest.mark.timeout(120)
def test_same_host_bypass_on_real_traffic(proxy_factory):
    if not ROOT:
        pytest.skip("same-host bypass needs root (CAP_BPF, cgroup v2)")
    p = proxy_factory({"proxy": {"same_host_bypass": True}})
    state = feature(p, "same_host_bypass")
    if state == -1:
        pytest.skip("kernel refused the same-host bypass: " + p.stderr_tail()[-300:])
    assert state == 1, p.stderr_tail()
    r = pgbench(p.conninfo(BENCH_USER, "bench"), clients=8, jobs=2, seconds=3, select_only=True,
                timeout=60)
    assert r.failed == 0 and r.clean and r.processed > 100, r.describe()
    assert "same-host bypass on" in p.stderr_tail()


def test_vip_steers_connections_to_the_proxy(proxy_factory):
    if not ROOT:
        pytest.skip("sk_lookup VIP steering needs root")
    vip, vport = "127.0.0.77", free_port()
    p = proxy_factory({"vip": {"address": vip, "port": vport}})
    state = feature(p, "vip_steering")
    if state == -1:
        pytest.skip("kernel refused sk_lookup: " + p.stderr_tail()[-300:])
    assert state == 1, p.stderr_tail()
    # Nothing listens on VIP:vport; the sk_lookup program hands the connection to the proxy.
    ci = p.conninfo(BENCH_USER, "bench").with_(host=vip, port=vport)
    with psycopg.connect(**ci.kwargs()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        # The client connected to the VIP, and the proxy's side of the socket says so too.
        assert conn.info.host == vip
    p.stop()
    # Steering is gone with the proxy: nothing answers on the VIP any more.
    with pytest.raises(OSError):
        socket.create_connection((vip, vport), timeout=2)


def test_edge_guard_unavailable_means_one_line_and_a_metric(proxy_factory):
    # An interface that does not exist: the guard cannot attach; the proxy serves anyway.
    p = proxy_factory({"edge": {"enabled": True, "interface": "helios-nope0",
                                "vip": "127.0.0.1:5432", "xdp_mode": "skb"}})
    assert feature(p, "edge_guard") == -1
    assert p.stderr_tail().count("running without the XDP edge guard") == 1
    with psycopg.connect(**p.conninfo(BENCH_USER, "bench").kwargs()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert feature(p, "vip_steering") == 0 and feature(p, "same_host_bypass") == 0
