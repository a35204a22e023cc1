"""Fixtures for the integration suite.

Environment:
  HELIOS_BUILD_DIR      where heliosproxy is (scripts/test sets it; default <repo>/build)
  HELIOS_TEST_TARGET    helios (default) | pgbouncer (PgBouncer 1.18 as a stand-in proxy)
  HELIOS_DATA_PATHS     comma list of data paths to run the whole suite for (default userspace)
  HELIOS_KEEP_LOGS=1    keep proxy work dirs (config + stderr) in /tmp after the run

Fixtures:
  pg              session PgCluster (roles from harness.ROLES, databases app and bench,
                  pgbench tables in bench at scale 1)
  data_path       session-scoped parameter: each value of HELIOS_DATA_PATHS
  proxy_factory   proxy_factory(overrides=None, *, mode=None, pool_size=None, path=None,
                  **sections) (path: a data path other than the session's)
                  starts a proxy (default config + overrides) on the current data path;
                  stopped at teardown with SIGTERM and exit status 0 asserted
  proxy           proxy_factory() with the defaults (transaction mode, 20 backends)
Markers: @pytest.mark.timeout(s), @pytest.mark.needs("feature").
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> import harness

from harness import (DataPathUnavailable, PgCluster, ProxyError, deep_merge,  # noqa: E402
                     helios_binary, start_proxy, target_name)
from harness.proxy import PGBOUNCER_LACKS  # noqa: E402

DEFAULT_TIMEOUT = 180
DATA_PATHS = [p.strip() for p in os.environ.get("HELIOS_DATA_PATHS", "userspace").split(",")
              if p.strip()]
_unavailable: dict[str, str] = {}


def pytest_report_header(config):
    t = target_name()
    where = helios_binary() if t == "helios" else "pgbouncer (stand-in)"
    return f"helios target: {t} ({where}); data paths: {', '.join(DATA_PATHS)}"


def pytest_runtest_setup(item):
    for m in item.iter_markers("needs"):
        for feature in m.args:
            if target_name() == "pgbouncer" and feature in PGBOUNCER_LACKS:
                pytest.skip(PGBOUNCER_LACKS[feature])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    m = item.get_closest_marker("timeout")
    secs = int(m.args[0]) if m else DEFAULT_TIMEOUT

    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded its {secs}s limit")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(secs)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for p in getattr(item, "_helios_proxies", []):
            rep.sections.append((f"{p.kind} stderr (tail) [{p.config_path}]",
                                 p.stderr_tail(60)))


@pytest.fixture(scope="session")
def pg():
    cluster = PgCluster(max_connections=int(os.environ.get("HELIOS_TEST_PG_MAX_CONNECTIONS",
                                                           "200")))
    cluster.start()
    try:
        cluster.pgbench_init("bench", scale=1)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session", params=DATA_PATHS)
def data_path(request):
    return request.param


@pytest.fixture
def redis():
    """A throwaway redis-server on a free port (Debian's), for [fleet] tests; skips the test
    where redis-server is not installed."""
    from harness import RedisServer, redis_available

    why = redis_available()
    if why:
        pytest.skip(why)
    with RedisServer() as r:
        yield r


@pytest.fixture
def role(pg):
    """role(password="pw-1", options="LOGIN") makes a fresh role with a SCRAM password, usable in
    database app; every role made is dropped afterwards (with what it owns, its sessions ended)."""
    made = []

    def make(password: str = "pw-1", options: str = "LOGIN") -> str:
        name = "r_" + uuid.uuid4().hex[:10]
        with pg.admin_connect("postgres") as c:
            c.execute(f'CREATE ROLE "{name}" {options} PASSWORD %s' % _sql_literal(password))
        made.append(name)
        return name

    yield make
    for name in made:
        for db in ("postgres", "app"):
            with pg.admin_connect(db) as c:
                c.execute(f'DROP OWNED BY "{name}"')
        with pg.admin_connect("postgres") as c:
            c.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      f"WHERE usename = '{name}'")
            for _ in range(50):  # a terminated session may still hold the role for a moment
                try:
                    c.execute(f'DROP ROLE IF EXISTS "{name}"')
                    break
                except psycopg.Error:
                    time.sleep(0.1)


def _sql_literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


@pytest.fixture
def proxy_factory(pg, data_path, request):
    started = []
    request.node._helios_proxies = started

    def factory(overrides: dict | None = None, *, mode: str | None = None,
                pool_size: int | None = None, path: str | None = None, **sections):
        path = path or data_path  # a test may pin its own data path (test_kernel_datapath)
        ov = deep_merge(overrides or {}, sections)
        if mode is not None:
            ov = deep_merge(ov, {"proxy": {"mode": mode}})
        if pool_size is not None:
            ov = deep_merge(ov, {"backend": {"max_connections": pool_size}})
        if path in _unavailable:
            pytest.skip(_unavailable[path])
        try:
            p = start_proxy(pg, ov, data_path=path)
        except DataPathUnavailable as e:
            _unavailable[path] = str(e)
            pytest.skip(str(e))
        p.expect_exit = 0  # a test may change this before teardown (None = any)
        started.append(p)
        return p

    yield factory
    problems = []
    for p in started:
        try:
            if p.returncode is None:
                p.stop(expect_exit=p.expect_exit)
        except ProxyError as e:
            problems.append(str(e))
        finally:
            p.cleanup()
    if problems:
        pytest.fail("proxy shutdown: " + "\n".join(problems), pytrace=False)


@pytest.fixture
def proxy(proxy_factory):
    return proxy_factory()
