"""Issue 14 (hardening), the admin surface and reload:

- the admin API and /metrics listen on loopback by default;
- POST reload and drain need a bearer token (generated at first start into a 0600 file next to
  the config when none is configured); a browser's cross-site form post is refused; no CORS;
- /health and /metrics answer within 1 s while 1,000 idle TCP connections sit on their ports;
- a refused reload (syntax error, empty file, binary garbage, invalid value, missing required
  section) changes nothing: /health, /api/v1/pool/stats and new logins are as before, and a
  valid reload afterwards still works.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import stat
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import requests

from harness import deep_merge, helios_binary, toml_dumps
from harness.util import wait_until

pytestmark = pytest.mark.needs("admin_api")

REPO = Path(__file__).resolve().parents[2]




def heliosctl(proxy, *args, **env_over):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_ADMIN_")}
    env["HELIOS_ADMIN_URL"] = proxy.admin_url
    env.update(env_over)
    ctl = helios_binary().parent / "heliosctl"
    return subprocess.run([str(ctl), *args], capture_output=True, text=True, timeout=30, env=env)


def listening_hosts(port: int) -> set[str]:
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}


# ---- defaults and the token --------------------------------------------------------------------

def test_reference_config_keeps_admin_and_metrics_on_loopback():
    ref = tomllib.loads((REPO / "config/helios-proxy.toml").read_text())
    assert ref["proxy"]["admin_listen_address"].startswith("127.0.0.1:")
    assert ref["metrics"]["prometheus_address"] == "127.0.0.1"


@pytest.mark.timeout(60)
def test_metrics_listen_on_loopback_when_no_address_is_given(proxy_factory):
    proxy = proxy_factory()
    proxy.stop()
    proxy.config["metrics"].pop("prometheus_address")  # the built-in default, then
    proxy.start()
    mport = proxy.config["metrics"]["prometheus_port"]
    aport = int(proxy.admin_url.rsplit(":", 1)[1])
    wait_until(lambda: listening_hosts(mport), timeout=10, what="the metrics port")
    assert listening_hosts(mport) == {"127.0.0.1"}
    assert listening_hosts(aport) == {"127.0.0.1"}
    assert requests.get(f"http://127.0.0.1:{mport}/metrics", timeout=5).status_code == 200


@pytest.mark.timeout(60)
def test_mutations_need_the_generated_token_and_refuse_a_form_post(proxy_factory):
    proxy = proxy_factory()
    tf = proxy.admin_token_file
    assert tf.exists(), proxy.stderr_tail()
    assert stat.S_IMODE(tf.stat().st_mode) == 0o600
    token = tf.read_text().strip()
    assert len(token) >= 32
    assert str(tf) in proxy.stderr_tail(200)  # its path is logged
    assert token not in proxy.stderr_tail(200)  # the token is not

    url = proxy.admin_url
    # No token, a wrong token, or what a cross-site HTML form sends: 401, nothing happens.
    assert requests.post(url + "/api/v1/reload", timeout=5).status_code == 401
    assert requests.post(url + "/api/v1/drain", timeout=5,
                         headers={"Authorization": "Bearer nope"}).status_code == 401
    form = requests.post(url + "/api/v1/drain", data={"x": "1"}, timeout=5,
                         headers={"Origin": "http://evil.example",
                                  "Referer": "http://evil.example/page.html"})
    assert form.status_code == 401
    # A GET (an <img src>, a link) cannot mutate either.
    assert requests.get(url + "/api/v1/drain", timeout=5).status_code == 405
    pre = requests.options(url + "/api/v1/drain", timeout=5,
                           headers={"Origin": "http://evil.example",
                                    "Access-Control-Request-Method": "POST",
                                    "Access-Control-Request-Headers": "authorization"})
    for r in (form, pre, requests.get(url + "/api/v1/status", timeout=5,
                                      headers={"Origin": "http://evil.example"})):
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], r.headers
    assert proxy.admin_get("/ready").status_code == 200  # not draining
    # Reads stay open (seed 000's monitoring script, seed 001's curl).
    assert proxy.admin_get("/api/v1/pool/stats").status_code == 200

    ok = requests.post(url + "/api/v1/reload", timeout=10,
                       headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200, ok.text
    # heliosctl finds the token: by file, by the config's directory, or given outright.
    r = heliosctl(proxy, "reload", HELIOS_ADMIN_TOKEN_FILE=str(tf))
    assert r.returncode == 0, r.stderr
    r = heliosctl(proxy, "reload", HELIOS_PROXY_CONFIG=str(proxy.config_path))
    assert r.returncode == 0, r.stderr
    r = heliosctl(proxy, "--token", token, "reload")
    assert r.returncode == 0, r.stderr
    r = heliosctl(proxy, "reload", HELIOS_ADMIN_TOKEN_FILE=str(tf) + ".missing")
    assert r.returncode == 1 and "unauthorized" in r.stderr, r.stderr


@pytest.mark.timeout(90)
def test_generated_token_survives_a_restart(proxy_factory):
    proxy = proxy_factory()
    token = proxy.admin_token
    proxy.stop()
    proxy.start()
    assert proxy.admin_token == token
    assert proxy.admin_post("/api/v1/reload").status_code == 200


@pytest.mark.timeout(60)
def test_a_reload_that_removes_the_configured_token_falls_back_to_a_generated_one(proxy_factory):
    proxy = proxy_factory({"admin": {"token": "c0nfigured"}})
    assert not proxy.admin_token_file.exists()
    old = {"Authorization": "Bearer c0nfigured"}
    assert proxy.admin_get("/api/v1/status").status_code == 401
    proxy.config.pop("admin")
    proxy.write_config()
    assert proxy.admin_post("/api/v1/reload", headers=old).status_code == 200
    # Reads are open now; mutations need the token generated at that moment, not the old one.
    assert proxy.admin_get("/api/v1/status").status_code == 200
    assert proxy.admin_post("/api/v1/reload", headers=old).status_code == 401
    assert proxy.admin_token_file.exists()
    assert stat.S_IMODE(proxy.admin_token_file.stat().st_mode) == 0o600
    assert proxy.admin_post("/api/v1/reload").status_code == 200


# ---- 1,000 idle connections -------------------------------------------------------------------

def open_idle(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks.append(s)
    return socks


def timed_get(url: str) -> tuple[int, float]:
    t0 = time.monotonic()
    r = requests.get(url, timeout=1.0)
    return r.status_code, time.monotonic() - t0


@pytest.mark.timeout(120)
def test_health_and_metrics_answer_under_1000_idle_connections(proxy_factory, record_property):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    proxy = proxy_factory()
    admin_port = int(proxy.admin_url.rsplit(":", 1)[1])
    metrics_port = proxy.config["metrics"]["prometheus_port"]
    idle = []
    try:
        idle += open_idle(admin_port, 1000)
        idle += open_idle(metrics_port, 1000)
        health = timed_get(proxy.admin_url + "/health")
        metrics = timed_get(proxy.metrics_url)
        stats = timed_get(proxy.admin_url + "/api/v1/pool/stats")
        summary = (f"with 1000 idle connections on each port: /health {health[1] * 1000:.1f} ms, "
                   f"/metrics {metrics[1] * 1000:.1f} ms, /api/v1/pool/stats "
                   f"{stats[1] * 1000:.1f} ms")
        print("\n" + summary)
        record_property("idle_connections", summary)
        assert health[0] == 200 and metrics[0] == 200 and stats[0] == 200
        assert max(health[1], metrics[1], stats[1]) < 1.0, summary
        # The server drops connections that send nothing, so they cannot pile up.
        def all_closed() -> bool:
            closed = 0
            for s in idle:
                s.setblocking(False)
                try:
                    if s.recv(1) == b"":
                        closed += 1
                except ConnectionResetError:
                    closed += 1
                except BlockingIOError:
                    pass
            return closed == len(idle)
        wait_until(all_closed, timeout=15, what="the server to close the idle connections")
        assert timed_get(proxy.admin_url + "/health")[0] == 200
        # And a second wave right away is no different.
        for s in idle:
            s.close()
        idle = open_idle(admin_port, 1000) + open_idle(metrics_port, 1000)
        assert timed_get(proxy.admin_url + "/health")[0] == 200
        assert timed_get(proxy.metrics_url)[0] == 200
    finally:
        for s in idle:
            s.close()
    assert proxy.alive()


# ---- refused reloads change nothing ----------------------------------------------------------

def syntax_error(text: str) -> bytes:
    return (text + "\n[backend\nhost = \n").encode()


def empty(_: str) -> bytes:
    return b""


def binary_garbage(_: str) -> bytes:
    import random  # noqa: PLC0415

    # 1 MiB of reproducible noise, with NULs, invalid UTF-8 and a fake section header in it.
    return random.Random(14).randbytes(1 << 20) + b"\x00\xff\xfe[proxy]\x00"


def invalid_value(text: str) -> bytes:
    return text.replace("max_connections = 20", "max_connections = -3").encode()


def missing_backend(text: str) -> bytes:
    doc = tomllib.loads(text)
    doc.pop("backend")
    return toml_dumps(doc).encode()


BROKEN = {
    "syntax_error": syntax_error,
    "empty_file": empty,
    "binary_garbage": binary_garbage,
    "invalid_value": invalid_value,
    "missing_backend": missing_backend,
}


def steady(proxy) -> dict:
    """What a refused reload must not change (counters that move on their own left out)."""
    h = proxy.admin_get("/health")
    st = proxy.admin_get("/api/v1/pool/stats").json()
    status = proxy.admin_get("/api/v1/status").json()
    return {
        "health": (h.status_code, h.json()),
        "ready": proxy.admin_get("/ready").status_code,
        "mode": st["mode"],
        "max": st["max"],
        "max_client_connections": st["max_client_connections"],
        "pools": sorted((p["name"], p["max"], p["min"], p["mode"]) for p in st["pools"]),
        "status_mode": status["mode"],
    }


def login_works(proxy) -> bool:
    c = proxy.connect()
    try:
        return c.execute("SELECT 41 + 1").fetchone() == (42,)
    finally:
        c.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", list(BROKEN))
@pytest.mark.parametrize("via", ["sighup", "api"])
def test_refused_reload_changes_nothing(proxy_factory, kind, via):
    proxy = proxy_factory(pool_size=20)
    assert login_works(proxy)
    before = steady(proxy)
    assert before["max"] == 20 and before["pools"], before
    good = proxy.config_path.read_text()
    failures = proxy.metric("helios_proxy_reloads_total", result="failed")

    proxy.config_path.write_bytes(BROKEN[kind](good))
    if via == "sighup":
        proxy.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: proxy.metric("helios_proxy_reloads_total", result="failed")
                   > failures, timeout=10, what="the reload to be refused")
    else:
        r = proxy.admin_post("/api/v1/reload")
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert str(proxy.config_path) in err, err
        assert err.isprintable() or "\n" in err, err
    last = proxy.admin_get("/api/v1/status").json()["last_reload"]
    assert last["ok"] is False and str(proxy.config_path) in last["error"], last
    assert "reload refused" in proxy.stderr_tail(50)

    assert steady(proxy) == before
    assert login_works(proxy)
    assert proxy.metric("helios_proxy_last_reload_success") == 0

    # A valid reload afterwards still works and takes effect.
    proxy.config = deep_merge(proxy.config, {"backend": {"max_connections": 17}})
    proxy.write_config()
    r = proxy.admin_post("/api/v1/reload")
    assert r.status_code == 200, r.text
    after = steady(proxy)
    assert after["pools"] and all(p[1] == 17 for p in after["pools"]), after
    assert login_works(proxy)
    assert proxy.metric("helios_proxy_last_reload_success") == 1
