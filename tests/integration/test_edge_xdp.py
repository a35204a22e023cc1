"""XDP edge guard on a real NIC path: two namespaces + veth made by the test, the guard attached
(heliosctl attach, native mode) to the server-side veth, a real PostgreSQL in the server
namespace behind the VIP, clients in the other namespace.

The main test runs once per target behind the VIP (the VIP is a `local` route in the server
namespace, so a listener on all addresses receives VIP traffic):
  postgres   PostgreSQL itself, listening on 0.0.0.0
  proxy      heliosproxy (userspace data path) on 0.0.0.0:6432, in front of that PostgreSQL
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edge_helpers as eh  # noqa: E402
from harness import (APP_USER, ROLES, ConnInfo, PgCluster, helios_binary, psql,  # noqa: E402
                     start_proxy)

pytestmark = pytest.mark.skipif(eh.why_no_netns() is not None,
                                reason=f"edge XDP tests: {eh.why_no_netns()}")

# Tenant A may open 40 connections at once and 20/s after that; B has its own 200/200.
A_RATE, A_BURST = 20, 40
B_RATE, B_BURST = 200, 200
STORM = 2000


@pytest.fixture
def topo(request):
    t = eh.EdgeTopology("x")
    request.addfinalizer(t.close)  # runs even if create() fails half-way
    t.create()
    return t


@pytest.fixture
def server_pg(topo, request):
    """PostgreSQL inside the server namespace, on every address (so VIP:port reaches it)."""
    cluster = PgCluster(host="0.0.0.0", max_connections=300,
                        settings={"listen_addresses": "*"})  # IPv4 and IPv6
    request.addfinalizer(cluster.stop)
    with eh.in_netns(topo.server):
        cluster.start(databases=("app",))
    hba = cluster.datadir / "pg_hba.conf"
    with open(hba, "a") as f:
        f.write("host all all 10.77.0.0/16 scram-sha-256\n")
        f.write("host all all fd77::/16 scram-sha-256\n")
    cluster.query("SELECT pg_reload_conf()")
    return cluster


PROXY_PORT = 6432


@pytest.fixture(params=["postgres", "proxy"])
def vip_target(request, topo, server_pg):
    """(kind, port) of what listens behind the VIP in the server namespace."""
    if request.param == "postgres":
        return "postgres", server_pg.port
    if not helios_binary().exists():
        pytest.skip(f"SKIP: {helios_binary()} not built")
    overrides = {"proxy": {"listen_address": f"0.0.0.0:{PROXY_PORT}"},
                 "backend": {"host": "127.0.0.1"}}
    with eh.in_netns(topo.server):
        p = start_proxy(server_pg, overrides)

    def stop():
        try:
            p.stop(expect_exit=None)
        finally:
            p.cleanup()
    request.addfinalizer(stop)
    return "proxy", PROXY_PORT


def vip_conninfo(port: int) -> ConnInfo:
    return ConnInfo(host=eh.VIP, port=port, user=APP_USER,
                    password=ROLES[APP_USER].password, dbname="app",
                    extra={"connect_timeout": "5"})


def psql_from_client(topo: eh.EdgeTopology, port: int, sql: str):
    with eh.in_netns(topo.client):
        return psql(vip_conninfo(port), sql, timeout=20)


def attach_guard(topo: eh.EdgeTopology, port: int, *extra: str):
    cp = topo.attach("--vip", f"{eh.VIP}:{port}",
                     "--tenant", f"tenant_a={eh.TENANT_A_CIDR}:{A_RATE}:{A_BURST}",
                     "--tenant", f"tenant_b={eh.TENANT_B_CIDR}:{B_RATE}:{B_BURST}", *extra,
                     check=False)
    if cp.returncode != 0 and "missing" in cp.stderr:
        pytest.skip(f"SKIP: kernel refuses the guard: {cp.stderr.strip()}")
    assert cp.returncode == 0, cp.stderr
    return cp


@pytest.mark.timeout(240)
def test_guard_throttles_one_tenant_storm_and_spares_the_other(topo, server_pg, vip_target):
    kind, port = vip_target
    # Without the guard the VIP works.
    r = psql_from_client(topo, port, "SELECT inet_client_addr(), inet_server_addr()")
    assert r.ok, r.stderr
    if kind == "postgres":
        assert r.rows == [[eh.TENANT_B_IP, eh.VIP]]
    else:  # the proxy's backend connection is local to the server namespace
        assert r.rows == [["127.0.0.1", "127.0.0.1"]]

    cp = attach_guard(topo, port)
    assert "xdp mode: native" in cp.stdout
    assert "single program" in cp.stdout or "dispatcher" in cp.stdout
    prog = topo.xdp_prog_on_link()
    assert prog is not None, "no XDP program on the server veth"

    # psql through the VIP, guarded.
    r = psql_from_client(topo, port, "SELECT 42")
    assert r.ok, r.stderr
    assert r.rows == [["42"]]

    # Storm: 2,000 connects from tenant A inside 1.5 s; its bucket admits ~burst + rate x time.
    a = eh.storm(topo, eh.TENANT_A_IP, port, STORM, window=1.5)
    print("storm A:", a)
    assert a["attempted"] == STORM
    admitted_max = A_BURST + A_RATE * (a["elapsed_s"] + 0.5) + 5
    assert 0 < a["connected"] <= admitted_max, a
    assert a["pending"] >= STORM - admitted_max - a["refused"], a

    # Tenant B, right after A's storm (A's bucket is empty): every connect succeeds.
    b = eh.storm(topo, eh.TENANT_B_IP, port, 100, window=3.0)
    print("connects B:", b)
    assert b["connected"] == 100, b
    r = psql_from_client(topo, port, "SELECT 'b still served'")
    assert r.ok, r.stderr

    # bpftool reads the pinned per-CPU counters with named fields.
    ids = topo.tenant_ids()
    assert set(ids) == {"tenant_a", "tenant_b"}
    counters = topo.counters_from_bpftool()
    ca, cb = counters[ids["tenant_a"]], counters[ids["tenant_b"]]
    assert ca["syn_seen"] >= STORM
    assert ca["syn_dropped"] >= STORM - admitted_max
    assert ca["syn_passed"] + ca["syn_dropped"] == ca["syn_seen"]
    assert ca["syn_passed"] >= a["connected"]
    assert cb["syn_dropped"] == 0
    assert cb["syn_passed"] >= 100 + 2  # storm + the two guarded psql sessions
    assert ca["packets"] > 0 and ca["bytes"] >= ca["packets"] * 54

    # heliosctl's view agrees with bpftool's.
    out = topo.srv([str(eh.heliosctl()), "-o", "json", "edge-counters", "--instance",
                    topo.instance]).stdout
    import json
    rows = {row["tenant"]: row for row in json.loads(out)["tenants"]}
    assert rows["tenant_a"]["syn_dropped"] == ca["syn_dropped"]

    # Hot update: raise A's budget without detaching; A's connects now succeed.
    cp = topo.attach("--update", "--vip", f"{eh.VIP}:{port}",
                     "--tenant", f"tenant_a={eh.TENANT_A_CIDR}:5000:5000",
                     "--tenant", f"tenant_b={eh.TENANT_B_CIDR}:{B_RATE}:{B_BURST}")
    assert topo.xdp_prog_on_link() == prog, "update must not reload the program"
    a2 = eh.storm(topo, eh.TENANT_A_IP, port, 200, window=3.0)
    assert a2["connected"] == 200, a2

    # Detach leaves no program and no pin.
    topo.detach()
    assert topo.xdp_prog_on_link() is None
    assert not topo.pin_dir.exists()
    progs = eh.sh(["bpftool", "-j", "prog", "show"]).stdout
    assert f'"id":{prog},' not in progs.replace(" ", "")
    r = psql_from_client(topo, port, "SELECT 1")
    assert r.ok, r.stderr


@pytest.mark.timeout(120)
def test_skb_mode_and_detach_leaves_nothing(topo, server_pg):
    port = server_pg.port
    cp = attach_guard(topo, port, "--mode", "skb")
    assert "xdp mode: skb" in cp.stdout
    assert topo.xdp_prog_on_link() is not None
    r = psql_from_client(topo, port, "SELECT 1")
    assert r.ok, r.stderr
    # A second attach of the same instance is refused, the first one keeps running.
    again = topo.attach("--vip", f"{eh.VIP}:{port}", check=False)
    assert again.returncode == 1 and "already attached" in again.stderr
    topo.detach()
    assert topo.xdp_prog_on_link() is None
    assert not topo.pin_dir.exists()


@pytest.mark.timeout(60)
def test_attach_without_privileges_says_what_is_missing(topo):
    cp = eh.sh(["runuser", "-u", "nobody", "--", "nsenter", f"--net=/run/netns/{topo.server}",
                str(eh.heliosctl()), "attach", "--dev", topo.srv_if, "--vip", f"{eh.VIP}:5432"],
               check=False)
    # nsenter itself needs CAP_SYS_ADMIN: as nobody it may fail first; both must exit non-zero
    # with a message, never attach.
    assert cp.returncode != 0
    direct = eh.sh(["runuser", "-u", "nobody", "--", str(eh.heliosctl()), "attach", "--dev",
                    "lo", "--vip", f"{eh.VIP}:5432"], check=False)
    assert direct.returncode == 1, direct
    assert "missing privilege" in direct.stderr
    assert topo.xdp_prog_on_link() is None


@pytest.mark.timeout(120)
def test_ipv6_vip_and_tenant_prefix(topo, server_pg):
    port = server_pg.port
    cp = topo.attach("--vip", f"{eh.VIP}:{port},[{eh.VIP6}]:{port}",
                     "--tenant", f"tenant_a6={eh.TENANT_A6_CIDR}:{A_RATE}:{A_BURST}", check=False)
    if cp.returncode != 0 and "missing" in cp.stderr:
        pytest.skip(f"SKIP: kernel refuses the guard: {cp.stderr.strip()}")
    assert cp.returncode == 0, cp.stderr
    # psql over the IPv6 VIP (source fd77::2: no tenant, only counted as "(unmatched)").
    with eh.in_netns(topo.client):
        r = psql(ConnInfo(host=eh.VIP6, port=port, user=APP_USER,
                          password=ROLES[APP_USER].password, dbname="app",
                          extra={"connect_timeout": "5"}), "SELECT inet_server_addr()")
    assert r.ok, r.stderr
    assert r.rows == [[eh.VIP6]]
    a = eh.storm(topo, eh.TENANT_A6_IP, port, 1000, window=2.5, dst=eh.VIP6)
    admitted_max = A_BURST + A_RATE * (a["elapsed_s"] + 0.5) + 5
    assert 0 < a["connected"] <= admitted_max, a
    ids = topo.tenant_ids()
    c = topo.counters_from_bpftool()
    assert c[ids["tenant_a6"]]["syn_dropped"] >= 1000 - admitted_max
    assert c[0]["syn_passed"] >= 1 and c[0]["syn_dropped"] == 0  # the psql session
    topo.detach()
    assert not topo.pin_dir.exists()


@pytest.mark.timeout(120)
def test_attach_from_proxy_config(topo, server_pg, tmp_path):
    """heliosctl attach --config takes [edge] and the rules' edge_* keys; --dev/--vip override."""
    port = server_pg.port
    cfg = tmp_path / "proxy.toml"
    cfg.write_text(f"""
[edge]
enabled = true
interface = "{topo.srv_if}"
vip = "{eh.VIP}:{port}"
xdp_mode = "skb"
global_syn_rate = 1000

[tenant_quotas]
enabled = true

[[tenant_quotas.limits]]
tenant_pattern = "tenant_a*"
edge_cidrs = ["{eh.TENANT_A_CIDR}"]
edge_syn_rate = {A_RATE}
edge_syn_burst = {A_BURST}

[[tenant_quotas.limits]]
tenant_pattern = "tenant_b*"
edge_cidrs = ["{eh.TENANT_B_CIDR}"]
edge_syn_rate = {B_RATE}
""")
    cp = topo.attach("--config", str(cfg), check=False)  # --dev equals the config's interface
    if cp.returncode != 0 and "missing" in cp.stderr:
        pytest.skip(f"SKIP: kernel refuses the guard: {cp.stderr.strip()}")
    assert cp.returncode == 0, cp.stderr
    assert "xdp mode: skb" in cp.stdout  # from the config's xdp_mode
    rules = {e["value"]["name"]: e["value"] for e in topo.map_dump("tenant_rules")
             if e["value"]["flags"] & 1}
    assert rules["tenant_a*"]["syn_rate_milli"] == A_RATE * 1000
    assert rules["tenant_a*"]["syn_burst_milli"] == A_BURST * 1000
    assert rules["tenant_b*"]["syn_burst_milli"] == B_RATE * 1000  # burst defaults to the rate
    config = topo.map_dump("guard_config")[0]["value"]
    assert config["global_syn_rate_milli"] == 1000 * 1000
    a = eh.storm(topo, eh.TENANT_A_IP, port, 500, window=1.5)
    assert 0 < a["connected"] <= A_BURST + A_RATE * (a["elapsed_s"] + 0.5) + 5, a
    # A reload through the same config path (rates only) keeps the program.
    prog = topo.xdp_prog_on_link()
    cfg.write_text(cfg.read_text().replace(f"edge_syn_rate = {A_RATE}\n", "edge_syn_rate = 7\n"))
    topo.attach("--update", "--config", str(cfg))
    assert topo.xdp_prog_on_link() == prog
    rules = {e["value"]["name"]: e["value"] for e in topo.map_dump("tenant_rules")
             if e["value"]["flags"] & 1}
    assert rules["tenant_a*"]["syn_rate_milli"] == 7000
    topo.detach()
    assert topo.xdp_prog_on_link() is None and not topo.pin_dir.exists()
