"""Admin HTTP API, heliosctl, and seed 000's monitoring script against a running heliosproxy.

seed_monitoring.py is Example 5's "Python monitoring script" from seed 000, copied verbatim (the
seed lost its line breaks; they are restored, nothing else changed). The only substitution, made
by test_seed_monitoring_script_runs_unmodified when it runs the script, is the admin address:
'helios-proxy:9090' -> the test proxy's admin host:port.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from harness import APP_USER, BENCH_USER, helios_binary, pgbench, psql
from harness.util import free_port

pytestmark = pytest.mark.needs("admin_api")

HERE = Path(__file__).resolve().parent
SEED_SCRIPT = HERE / "seed_monitoring.py"
SEED_ADMIN = "helios-proxy:9090"

QUOTAS = {
    "tenant_quotas": {
        "enabled": True,
        "identifier": "application_name",
        "limits": [
            {"tenant_pattern": "tenant_*", "max_connections": 50, "max_qps": 1000},
            {"tenant_pattern": "enterprise_*", "max_connections": 500, "max_qps": 10000},
        ],
    },
}


def heliosctl(proxy, *args, token=None, admin=None, timeout=30):
    env = dict(os.environ)
    env.pop("HELIOS_ADMIN_TOKEN", None)
    env["HELIOS_ADMIN_URL"] = admin or proxy.admin_url
    env["HELIOS_ADMIN_TOKEN_FILE"] = str(proxy.admin_token_file)  # the generated token
    if token:
        env["HELIOS_ADMIN_TOKEN"] = token
    ctl = helios_binary().parent / "heliosctl"
    return subprocess.run([str(ctl), *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def hold(proxy, tenant, n, user=APP_USER, db="app"):
    """n open client connections of `tenant` (closed at proxy stop)."""
    return [proxy.connect(user, db, application_name=tenant) for _ in range(n)]


@pytest.mark.timeout(60)
def test_health_ready_and_stats_documents(proxy_factory):
    proxy = proxy_factory(QUOTAS)
    r = proxy.admin_get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = proxy.admin_get("/ready")
    assert r.status_code == 200 and r.json()["ready"] is True

    conns = hold(proxy, "tenant_acme", 3)
    for c in conns:
        c.execute("SELECT 1")
    tut = proxy.admin_get("/pool/stats").json()
    assert set(tut) == {"mode", "total_connections", "active_leases", "idle_connections",
                        "waiting_requests", "total_acquires", "total_releases",
                        "avg_lease_duration_ms"}
    assert tut["mode"] == "transaction"
    assert tut["total_acquires"] >= 3 and tut["total_releases"] >= 3
    assert tut["total_connections"] == tut["active_leases"] + tut["idle_connections"] >= 1

    pool = proxy.admin_get("/api/v1/pool/stats").json()
    app_pool = next(p for p in pool["pools"] if p["name"] == "app/app")
    assert app_pool["max"] == proxy.pool_size
    assert pool["client_connections"] == 3
    assert pool["queued_clients"] == 0
    assert pool["quota_rejections_1h"] == 0

    tenants = {t["id"]: t for t in proxy.admin_get("/api/v1/tenants/stats").json()["tenants"]}
    acme = tenants["tenant_acme"]
    assert acme["connections"] == 3
    assert acme["max_connections"] == 50
    assert acme["max_qps"] == 1000
    assert acme["queries_total"] >= 3

    status = proxy.admin_get("/api/v1/status").json()
    assert status["ready"] is True and status["client_connections"] == 3

    # /metrics on the admin port serves the same families as the Prometheus exposer.
    text = proxy.admin_get("/metrics").text
    assert "helios_proxy_tenant_connections{" in text
    assert proxy.metric("helios_proxy_tenant_connections", tenant_id="tenant_acme") == 3
    assert proxy.metric("helios_proxy_tenant_max_connections", tenant_id="tenant_acme") == 50


@pytest.mark.timeout(60)
def test_token_protects_everything_but_probes(proxy_factory):
    proxy = proxy_factory({"admin": {"token": "t0ps3cret"}})
    assert proxy.admin_get("/health").status_code == 200
    assert proxy.admin_get("/ready").status_code == 200
    for path in ("/pool/stats", "/api/v1/pool/stats", "/api/v1/tenants/stats",
                 "/api/v1/status", "/metrics"):
        assert proxy.admin_get(path).status_code == 401, path
    assert proxy.admin_post("/api/v1/drain").status_code == 401
    assert proxy.alive()
    ok = requests.get(proxy.admin_url + "/api/v1/status",
                      headers={"Authorization": "Bearer t0ps3cret"}, timeout=5)
    assert ok.status_code == 200
    assert heliosctl(proxy, "status").returncode == 1
    r = heliosctl(proxy, "status", token="t0ps3cret")
    assert r.returncode == 0, r.stderr


@pytest.mark.timeout(90)
def test_seed_monitoring_script_runs_unmodified(proxy_factory, tmp_path):
    # Tenants: two with quotas (seed 000's rules) and one with none (limits 0 = unlimited).
    proxy = proxy_factory(QUOTAS)
    held = hold(proxy, "tenant_medium_co", 4) + hold(proxy, "enterprise_bigcorp", 2)
    held += hold(proxy, "free_rider", 1)
    for c in held:
        c.execute("SELECT 1")
    # Some load, so qps and latencies are not all zero; paced below the tenant's max_qps (1000),
    # or on a fast machine its statements would wait past qps_max_wait and be refused (53400).
    r = pgbench(proxy.conninfo(BENCH_USER, "bench", application_name="tenant_medium_co"),
                clients=4, seconds=2, select_only=True, rate=400)
    assert r.clean, r.describe()

    src = SEED_SCRIPT.read_text()
    assert src.count(SEED_ADMIN) == 2
    admin = proxy.config["proxy"]["admin_listen_address"]
    script = tmp_path / "monitor.py"
    script.write_text(src.replace(SEED_ADMIN, admin))
    cp = subprocess.run(["/usr/bin/python3", str(script)], capture_output=True, text=True,
                        timeout=30, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout
    assert "Tenant Connection Report" in out
    assert "Tenant: tenant_medium_co" in out
    assert "Connections: 4/50 (8.0%)" in out
    assert "Connections: 2/500 (0.4%)" in out
    # No quota: the global max_client_connections is the cap, and the QPS ratio is ~0.
    assert "Tenant: free_rider 🟢 NORMAL" in out
    assert "Connections: 1/10000 (0.0%)" in out
    assert "Connection Pool Health" in out
    assert "Client Connections: 7" in out
    m = re.search(r"Backend Connections: (\d+)/(\d+) \(idle: (\d+)\)", out)
    assert m and int(m.group(2)) == 2 * proxy.pool_size  # app/app and bench/bench pools
    assert "Quota Rejections (1h): 0" in out


@pytest.mark.timeout(90)
def test_heliosctl_tables_json_and_exit_codes(proxy_factory):
    proxy = proxy_factory(QUOTAS)
    held = hold(proxy, "tenant_zeta", 2)
    for c in held:
        c.execute("SELECT 1")

    r = heliosctl(proxy, "status")
    assert r.returncode == 0, r.stderr
    assert ": ready" in r.stdout and "transaction" in r.stdout

    r = heliosctl(proxy, "pools")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["POOL", "MODE", "TOTAL"]
    row = next(line.split() for line in lines if line.startswith("app/app "))
    assert row[1] == "transaction" and row[6] == str(proxy.pool_size)

    r = heliosctl(proxy, "tenants")
    assert r.returncode == 0, r.stderr
    row = next(line.split() for line in r.stdout.splitlines() if line.startswith("tenant_zeta"))
    assert row[1:3] == ["2", "50"]

    r = heliosctl(proxy, "tenants", "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert any(t["id"] == "tenant_zeta" and t["connections"] == 2 for t in doc["tenants"])
    r = heliosctl(proxy, "-o", "json", "pools")
    assert r.returncode == 0 and "pools" in json.loads(r.stdout)

    r = heliosctl(proxy, "reload")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("reloaded in ")

    # Nothing listens there: exit 3, a clear message.
    dead = f"http://127.0.0.1:{free_port()}"
    r = heliosctl(proxy, "status", admin=dead)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert "cannot reach the admin API" in r.stderr


@pytest.mark.timeout(90)
def test_refused_reload_keeps_the_running_config(proxy_factory):
    proxy = proxy_factory(pool_size=7)
    psql(proxy.conninfo(), "SELECT 1")
    good = proxy.config_path.read_text()
    bad = good.replace("max_connections = 7", "max_connections = -3", 1)
    assert bad != good
    proxy.config_path.write_text(bad)
    line = next(i for i, text in enumerate(bad.splitlines(), 1) if "max_connections = -3" in text)

    r = proxy.admin_post("/api/v1/reload")
    assert r.status_code == 422
    body = r.json()
    assert body["ok"] is False
    assert f"{proxy.config_path}:{line}:" in body["error"], body
    ctl = heliosctl(proxy, "reload")
    assert ctl.returncode == 1
    assert f"{proxy.config_path}:{line}:" in ctl.stderr
    status = proxy.admin_get("/api/v1/status").json()
    assert status["last_reload"]["ok"] is False
    assert proxy.metric("helios_proxy_last_reload_success") == 0
    # The running config is untouched and still serves.
    pools = proxy.admin_get("/api/v1/pool/stats").json()["pools"]
    assert next(p for p in pools if p["name"] == "app/app")["max"] == 7
    assert psql(proxy.conninfo(), "SELECT 2").rows == [["2"]]

    proxy.config_path.write_text(good.replace("max_connections = 7", "max_connections = 9", 1))
    r = proxy.admin_post("/api/v1/reload")
    assert r.status_code == 200 and r.json()["ok"] is True
    pools = proxy.admin_get("/api/v1/pool/stats").json()["pools"]
    assert next(p for p in pools if p["name"] == "app/app")["max"] == 9
    assert proxy.metric("helios_proxy_last_reload_success") == 1


@pytest.mark.timeout(60)
def test_admin_api_is_loopback_by_default(proxy_factory):
    # Leave admin_listen_address out: the proxy's own default must be 127.0.0.1:9090.
    busy = subprocess.run(["ss", "-Hltn", "sport = :9090"], capture_output=True,
                          text=True).stdout.strip()
    if busy:
        pytest.skip(f"port 9090 is in use on this machine: {busy}")
    proxy = proxy_factory({"proxy": {"admin_listen_address": None}})
    out = subprocess.run(["ss", "-Hltnp", "sport = :9090"], capture_output=True,
                         text=True).stdout
    mine = [line for line in out.splitlines() if f"pid={proxy.proc.pid}," in line]
    assert mine, out
    for line in mine:
        assert "127.0.0.1:9090" in line, line
    assert requests.get("http://127.0.0.1:9090/health", timeout=5).status_code == 200


@pytest.mark.timeout(60)
def test_busy_admin_and_metrics_ports_are_retried_until_free(proxy_factory):
    # What an online restart looks like from the successor: its admin and metrics ports are
    # still held (here by plain sockets). It serves clients anyway and takes the ports over
    # as soon as they are free.
    import socket

    holders = []
    ports = []
    for _ in range(2):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        holders.append(s)
        ports.append(s.getsockname()[1])
    try:
        proxy = proxy_factory({"proxy": {"admin_listen_address": f"127.0.0.1:{ports[0]}"},
                               "metrics": {"prometheus_port": ports[1]}})
        assert psql(proxy.conninfo(), "SELECT 1").rows == [["1"]]
        log = proxy.stderr_tail()
        assert f"admin API: cannot listen on 127.0.0.1:{ports[0]}" in log, log
        assert "retrying in the background" in log, log
        assert proxy.alive()
    finally:
        for s in holders:
            s.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if (proxy.admin_get("/health", timeout=1).status_code == 200 and
                    requests.get(proxy.metrics_url, timeout=1).status_code == 200):
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)
    assert proxy.admin_get("/ready").status_code == 200
    assert proxy.metric("helios_proxy_ready") == 1
    assert "admin API on http://127.0.0.1:" in proxy.stderr_tail()
