"""The proxy attaches its kernel features from its own config ([proxy] same_host_bypass, [vip],
[edge]) and runs without any of them, with one log line and a metric, when the kernel refuses.
same_host_bypass defaults to "auto": on where it is safe (PostgreSQL on this host, the user-space
data path), off with one line saying which condition failed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import psycopg
import pytest

from harness import BENCH_USER, pgbench, start_proxy
from harness.util import free_port

ROOT = os.geteuid() == 0


def feature(proxy, name):
    return proxy.metric("helios_proxy_kernel_feature", feature=name)


def bypass_stats(proxy) -> dict:
    """The proxy's bypass counters summed over CPUs, from its pinned map (bpftool)."""
    pin = f"/sys/fs/bpf/helios/{proxy.config['proxy']['instance']}/bypass_stats"
    out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", pin], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    total: dict = {}
    for entry in json.loads(out):
        for v in (entry.get("formatted") or entry)["values"]:
            for k, n in v["value"].items():
                total[k] = total.get(k, 0) + n
    return total


@pytest.mark.timeout(60)
def test_same_host_bypass_default_stays_off_and_says_why(proxy_factory):
    # No same_host_bypass key: "auto". PostgreSQL is on 127.0.0.1, but this kernel's sk_msg
    # redirect has no flow control (tests/bpf/bypass_test.cpp), so auto leaves it off.
    p = proxy_factory()
    tail = p.stderr_tail()
    assert feature(p, "same_host_bypass") == 0, tail
    if p.data_path != "userspace":  # the kernel path's splicing decides first
        assert "same-host bypass (auto) not attached: data_path" in tail, tail
    else:
        assert "same-host bypass (auto) not attached: this kernel's sk_msg redirect has no flow " \
            "control" in tail, tail
    assert "same-host bypass on" not in tail
    assert not os.path.exists(f"/sys/fs/bpf/helios/{p.config['proxy']['instance']}/bypass_socks")
    with psycopg.connect(**p.conninfo(BENCH_USER, "bench").kwargs()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.timeout(60)
def test_same_host_bypass_auto_skips_a_database_on_another_host(pg, data_path, proxy_factory):
    # 192.0.2.1 (TEST-NET-1) is no address of this host and nothing answers there, so the proxy
    # cannot pass the harness's SELECT 1 readiness check: start it and read its start-up line.
    p = start_proxy(pg, {"backend": {"host": "192.0.2.1", "port": 5432}}, data_path=data_path,
                    start=False)
    try:
        p.write_config()
        p._spawn()
        want = "same-host bypass (auto) not attached:"
        deadline = time.monotonic() + 20
        while want not in p.stderr_tail() and p.proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        tail = p.stderr_tail()
        assert p.proc.poll() is None, tail  # serving (as far as it can) without the bypass
        if data_path == "userspace":
            assert want + " PostgreSQL is not on this host (192.0.2.1 is neither loopback nor " \
                "an address of this host)" in tail, tail
        else:  # the kernel path's splicing decides first
            assert want + " data_path" in tail, tail
        assert "same-host bypass on" not in tail
    finally:
        p.stop(expect_exit=None)
        p.cleanup()
    # false is never attached, and says nothing about it.
    q = proxy_factory({"proxy": {"same_host_bypass": False}})
    assert feature(q, "same_host_bypass") == 0
    assert "same-host bypass" not in q.stderr_tail()


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
    assert "same-host bypass on (sockops + sk_msg): same_host_bypass = true" in p.stderr_tail()
    if p.data_path == "userspace":
        # Both hops went through sk_msg redirects: pgbench's 8 connections and the pool's, both
        # ends each, and every transaction's messages.
        st = bypass_stats(p)
        assert st["added"] >= 2 * 8 + 2, st
        assert st["msgs_redirected"] > 2 * r.processed, st
        assert st["not_local"] == 0 and st["add_failed"] == 0, st


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
    # An interface that does not exist: the guard cannot attach; the proxy serves anyway. The
    # bypass is off so that the guard is the only kernel feature this config asks for.
    p = proxy_factory({"edge": {"enabled": True, "interface": "helios-nope0",
                                "vip": "127.0.0.1:5432", "xdp_mode": "skb"},
                       "proxy": {"same_host_bypass": False}})
    assert feature(p, "edge_guard") == -1
    assert p.stderr_tail().count("running without the XDP edge guard") == 1
    with psycopg.connect(**p.conninfo(BENCH_USER, "bench").kwargs()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert feature(p, "vip_steering") == 0 and feature(p, "same_host_bypass") == 0
