"""The proxy under test: HeliosProxy, or PgBouncer as a stand-in (HELIOS_TEST_TARGET=pgbouncer).

A proxy is described by one config dict in HeliosProxy's TOML schema (/work/briefs/config.md):
HeliosProxy gets it as TOML, PgBouncer gets an equivalent pgbouncer.ini. start() waits until a
`SELECT 1` through the proxy works (bounded); stop() sends SIGTERM and checks the exit code.
Both keep stderr in a file and put its tail into every error.

Data path convention (for the lead): with [proxy] data_path = "kernel" forced and the kernel
path unavailable, heliosproxy should log a line matching
    data_path "kernel" unavailable: <reason>
and exit non-zero (or log `... falling back to userspace`). The harness turns either into
DataPathUnavailable (tests skip with that line as the reason).
"""

from __future__ import annotations

import copy
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from .pgcluster import APP_USER, AUTH_QUERY, AUTH_USER, HELIOS_AUTH_QUERY, ROLES, PgCluster
from .toml_writer import dumps as toml_dumps
from .util import (REAPER, HarnessError, chown_postgres, drop_to_postgres, free_port,
                   port_accepts, raise_nofile, set_pdeathsig, tail)

REPO_ROOT = Path(__file__).resolve().parents[2]


class ProxyError(HarnessError):
    """The proxy failed to start, to serve, or to exit as expected (message has its log tail)."""


class DataPathUnavailable(ProxyError):
    """The proxy says the requested data path cannot run here (tests skip with the reason)."""


def target_name() -> str:
    t = os.environ.get("HELIOS_TEST_TARGET", "helios").strip().lower()
    if t not in ("helios", "pgbouncer"):
        raise HarnessError(f"HELIOS_TEST_TARGET must be helios or pgbouncer, got {t!r}")
    return t


def helios_binary() -> Path:
    build = os.environ.get("HELIOS_BUILD_DIR")
    build_dir = Path(build) if build else REPO_ROOT / "build"
    if not build_dir.is_absolute():
        build_dir = REPO_ROOT / build_dir
    return build_dir / "heliosproxy"


def deep_merge(base: dict, over: Optional[dict]) -> dict:
    """A copy of base with over merged in (dicts recursively; None values delete keys)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


_DUR = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(v) -> float:
    """Seconds from a config duration: int seconds, or "250ms", "5s", "10m", "1h30m"."""
    if isinstance(v, (int, float)):
        return float(v)
    s = str(v).strip()
    if s.isdigit():
        return float(s)
    pos, total = 0, 0.0
    for m in _DUR.finditer(s):
        if m.start() != pos:
            break
        n, unit = float(m.group(1)), m.group(2)
        total += n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"bad duration {v!r}")
    return total


@dataclass(frozen=True)
class ConnInfo:
    """Where and as whom a client connects. kwargs() for psycopg, env() for psql/pgbench."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    extra: dict = field(default_factory=dict)  # e.g. application_name, sslmode, options

    def with_(self, **changes) -> "ConnInfo":
        extra = dict(self.extra)
        for k in list(changes):
            if k not in ("host", "port", "user", "password", "dbname"):
                extra[k] = changes.pop(k)
        return replace(self, extra=extra, **changes)

    def kwargs(self) -> dict:
        d = {"host": self.host, "port": self.port, "user": self.user,
             "password": self.password, "dbname": self.dbname}
        d.update(self.extra)
        return d

    def dsn(self) -> str:
        def q(v) -> str:
            s = str(v)
            return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return " ".join(f"{k}={q(v)}" for k, v in self.kwargs().items())

    def env(self) -> dict:
        """libpq environment variables (for psql, pgbench, and other libpq programs)."""
        names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD",
                 "dbname": "PGDATABASE", "application_name": "PGAPPNAME",
                 "sslmode": "PGSSLMODE", "options": "PGOPTIONS",
                 "connect_timeout": "PGCONNECT_TIMEOUT", "gssencmode": "PGGSSENCMODE"}
        e = {}
        for k, v in self.kwargs().items():
            if k not in names:
                raise HarnessError(f"no libpq environment variable for {k!r}")
            e[names[k]] = str(v)
        return e

    def asyncpg_kwargs(self) -> dict:
        d = {"host": self.host, "port": self.port, "user": self.user,
             "password": self.password, "database": self.dbname}
        settings = {}
        for k, v in self.extra.items():
            if k == "application_name":
                settings[k] = v
            elif k == "sslmode":
                d["ssl"] = v
            elif k == "connect_timeout":
                d["timeout"] = float(v)
        if settings:
            d["server_settings"] = settings
        return d


# BPF pins of each proxy go under /sys/fs/bpf/helios/<instance>: a name of its own per proxy, so
# proxies of concurrent test runs (scripts/test runs the data paths side by side) never clear
# or overwrite each other's pins.
_INSTANCES = itertools.count(1)


def default_config(cluster: PgCluster, *, listen_port: int, admin_port: int,
                   metrics_port: int, data_path: str = "userspace",
                   mode: str = "transaction") -> dict:
    """The harness's base config (HeliosProxy schema). Tests merge their overrides into it."""
    return {
        "proxy": {
            "listen_address": f"127.0.0.1:{listen_port}",
            "admin_listen_address": f"127.0.0.1:{admin_port}",
            "mode": mode,
            "workers": 2,
            "instance": f"itest-{os.getpid()}-{next(_INSTANCES)}",
            "data_path": data_path,
            "log_level": os.environ.get("HELIOS_TEST_LOG_LEVEL", "info"),
            "startup_timeout": "10s",
            "drain_timeout": "5s",
        },
        "backend": {
            "host": cluster.host,
            "port": cluster.port,
            "database": "postgres",
            "user": AUTH_USER,
            "password": ROLES[AUTH_USER].password,
            "min_connections": 0,
            "max_connections": 20,
            "connection_timeout": "5s",
        },
        "connection_pool": {
            "acquire_timeout": "5s",
            "server_reset_query": "DISCARD ALL",
            "max_client_connections": 10000,
        },
        "auth": {
            "type": "scram-sha-256",
            "auth_query": HELIOS_AUTH_QUERY,
        },
        "metrics": {
            "enabled": True,
            "prometheus_port": metrics_port,
            "prometheus_address": "127.0.0.1",
        },
    }


# Features a test may need that the stand-in lacks (tests skip with the reason).
PGBOUNCER_LACKS = {
    "admin_api": "PgBouncer has no HTTP admin API",
    "tenant_quotas": "PgBouncer has no tenant quotas",
    "kernel_data_path": "PgBouncer has no kernel data path",
    "sqlstate_53300_on_acquire_timeout":
        "PgBouncer reports query_wait_timeout as 08P01, not 53300 naming the pool",
    "statement_mode_error": "PgBouncer closes the connection without HeliosProxy's SQLSTATE",
    "metrics": "PgBouncer has no Prometheus endpoint",
    "auth_failure_28P01": "PgBouncer 1.18 reports failed logins as 08P01 "
                          "(and says 'no such user'), not 28P01",
    "unknown_database_3D000": "PgBouncer 1.18 makes a client of an unknown database wait "
                              "query_wait_timeout, then sends 08P01",
    "auth_phase_error_response": "PgBouncer 1.18 closes without an ErrorResponse when a "
                                 "client sends a query instead of its password",
    "split_startup": "PgBouncer 1.18 refuses a startup packet that arrives in pieces "
                     "('client sent partial pkt in startup phase')",
}


class Proxy:
    """Common part of both targets. Create with start_proxy()."""

    kind = "?"
    stop_signal = signal.SIGTERM  # graceful drain

    def __init__(self, cluster: PgCluster, config: dict, data_path: str = "userspace") -> None:
        self.cluster = cluster
        self.config = config
        self.data_path = data_path
        self.workdir = Path(tempfile.mkdtemp(prefix=f"helios-{self.kind}-", dir="/tmp"))
        os.chmod(self.workdir, 0o755)
        chown_postgres(self.workdir)
        self._rm_id = REAPER.register({"rmtree": str(self.workdir)})
        self._kill_id: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.stderr_path = self.workdir / "stderr.log"
        self.returncode: Optional[int] = None
        self._connections: list = []
        self.starts = 0

    # -- addresses -----------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self.config["proxy"]["listen_address"].rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.config["proxy"]["listen_address"].rsplit(":", 1)[1])

    @property
    def mode(self) -> str:
        return self.config["proxy"].get("mode", "transaction")

    @property
    def pool_size(self) -> int:
        return int(self.config["backend"].get("max_connections", 20))

    @property
    def admin_url(self) -> str:
        return "http://" + self.config["proxy"]["admin_listen_address"]

    def unsupported(self, feature: str) -> Optional[str]:
        """None if this target has `feature`, else why not (tests skip with it)."""
        return None

    def conninfo(self, user: str = APP_USER, dbname: str = "app",
                 password: Optional[str] = None, **extra) -> ConnInfo:
        if password is None:
            password = ROLES[user].password if user in ROLES else ""
        extra.setdefault("connect_timeout", 10)
        return ConnInfo(self.host, self.port, user, password, dbname, extra)

    def connect(self, user: str = APP_USER, dbname: str = "app", *, autocommit: bool = True,
                password: Optional[str] = None, **kw):
        """A psycopg connection through the proxy; closed at stop() if the test did not."""
        import psycopg

        ci = self.conninfo(user, dbname, password=password)
        params = ci.kwargs()
        params.update(kw)
        conn = psycopg.connect(autocommit=autocommit, **params)
        self._connections.append(conn)
        return conn

    def stderr_tail(self, lines: int = 40) -> str:
        return tail(self.stderr_path, lines)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle -----------------------------------------------------------------------------
    def argv(self) -> list[str]:
        raise NotImplementedError

    def write_config(self) -> None:
        raise NotImplementedError

    def _preexec(self) -> None:
        raise_nofile(65536)
        set_pdeathsig(9)

    def _repick_ports(self) -> None:
        used = {self.cluster.port}
        lp = free_port(avoid=used)
        self.config["proxy"]["listen_address"] = f"127.0.0.1:{lp}"
        ap = free_port(avoid=used | {lp})
        self.config["proxy"]["admin_listen_address"] = f"127.0.0.1:{ap}"
        if "metrics" in self.config:
            self.config["metrics"]["prometheus_port"] = free_port(avoid=used | {lp, ap})

    def start(self, timeout: float = 30.0) -> "Proxy":
        for attempt in range(3):
            self.write_config()
            self._spawn()
            try:
                self._wait_ready(timeout)
                return self
            except ProxyError as e:
                if "Address already in use" in str(e) and attempt < 2:
                    self._kill()
                    self._repick_ports()
                    continue
                self._kill()
                raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        self.starts += 1
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=err,
                                         stderr=err, preexec_fn=self._preexec, close_fds=True,
                                         cwd=str(self.workdir))
        finally:
            err.close()
        self.returncode = None
        self._kill_id = REAPER.register({"kill": self.proc.pid, "sig": 9})

    def _check_data_path(self, text: str) -> None:
        pat = re.compile(r"data[_ ]path.*(unavailable|not available|unsupported|not supported|"
                         r"falling back|fall back)", re.I)
        if self.data_path != "userspace":
            for line in text.splitlines():
                if pat.search(line):
                    raise DataPathUnavailable(f"data_path {self.data_path}: {line.strip()}")

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        last_err = "never accepted a connection"
        served = 0.0  # when SELECT 1 first went through
        ci = self.conninfo(connect_timeout=3)
        b = self.config.get("backend", {})
        if b.get("user") and b["user"] not in ROLES:
            # A pool user the harness did not create (a test's own role, maybe without
            # auth_query rights): its own login is checked against [backend] password.
            ci = self.conninfo(b["user"], password=b.get("password", ""), connect_timeout=3)
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                text = self.stderr_tail(60)
                self._check_data_path(text)
                raise ProxyError(f"{self.kind} exited with {rc} during startup "
                                 f"(config {self.config_path}):\n{text}")
            if port_accepts(self.host, self.port, 0.5):
                try:
                    with psycopg.connect(**ci.kwargs(), autocommit=True) as c:
                        if c.execute("SELECT 1").fetchone() == (1,):
                            # The HTTP endpoints come up a moment later; a test that disables
                            # or misconfigures them still gets its proxy after 5 s.
                            served = served or time.monotonic()
                            if self._ops_ready() or time.monotonic() - served > 5.0:
                                self._check_data_path(self.stderr_tail(200))
                                return
                except psycopg.Error as e:
                    last_err = f"SELECT 1 through the proxy failed: {e}".strip()
            time.sleep(0.1)
        text = self.stderr_tail(60)
        self._check_data_path(text)
        raise ProxyError(f"{self.kind} not ready after {timeout:.0f}s ({last_err}); "
                         f"stderr tail:\n{text}")

    def _ops_ready(self) -> bool:
        """The proxy's HTTP endpoints (admin API, /metrics) accept connections: they start a
        moment after the data port, and a test may scrape right after start()."""
        if self.kind != "heliosproxy":
            return True
        m = self.config.get("metrics", {})
        ends = []
        if m.get("enabled", True) and m.get("prometheus_port"):
            ends.append((m.get("prometheus_address", "127.0.0.1"), int(m["prometheus_port"])))
        admin = self.config.get("proxy", {}).get("admin_listen_address", "")
        if admin and ":" in admin:
            host, _, port = admin.rpartition(":")
            ends.append((host.strip("[]"), int(port)))
        return all(port_accepts(h, p, 0.5) for h, p in ends)

    def close_clients(self) -> None:
        for c in self._connections:
            try:
                c.close()
            except Exception:
                pass
        self._connections.clear()

    def reload(self) -> None:
        """SIGHUP after rewriting the config file from self.config."""
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, expect_exit: Optional[int] = 0, timeout: Optional[float] = None) -> Optional[int]:
        """SIGTERM, wait, and check the exit code (None = accept any). Returns the code."""
        self.close_clients()
        if self.proc is None:
            return None
        if timeout is None:
            timeout = parse_duration(self.config["proxy"].get("drain_timeout", "5s")) + 15
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                raise ProxyError(f"{self.kind} did not exit within {timeout:.0f}s of "
                                 f"{self.stop_signal.name}; "
                                 f"stderr tail:\n{self.stderr_tail()}")
        self.returncode = self.proc.returncode
        REAPER.unregister(self._kill_id)
        self._kill_id = None
        if expect_exit is not None and self.returncode != expect_exit:
            raise ProxyError(f"{self.kind} exited with {self.returncode}, expected "
                             f"{expect_exit}; stderr tail:\n"
                             f"{self.stderr_tail()}")
        self.check_log()
        return self.returncode

    # Lines the proxy writes only when its own invariants break (a bug): any of them fails the
    # test that ran the proxy, whatever that test checked.
    BUG_MARKERS = ("refused client state transition", "refused backend state transition")

    def check_log(self) -> None:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return
        bugs = [line for line in text.splitlines() if any(m in line for m in self.BUG_MARKERS)]
        if bugs:
            raise ProxyError(f"{self.kind} logged a broken invariant:\n" + "\n".join(bugs[:10]))

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            self.returncode = self.proc.returncode
        REAPER.unregister(self._kill_id)
        self._kill_id = None

    def cleanup(self) -> None:
        """Kill if still running and remove the work dir (HELIOS_KEEP_LOGS=1 keeps it)."""
        self.close_clients()
        self._kill()
        if os.environ.get("HELIOS_KEEP_LOGS"):
            REAPER.unregister(self._rm_id)
            return
        shutil.rmtree(self.workdir, ignore_errors=True)
        REAPER.unregister(self._rm_id)

    @property
    def config_path(self) -> Path:
        raise NotImplementedError


class HeliosProxy(Proxy):
    kind = "heliosproxy"

    @property
    def config_path(self) -> Path:
        return self.workdir / "helios-proxy.toml"

    def argv(self) -> list[str]:
        binary = helios_binary()
        if not binary.exists():
            raise ProxyError(f"{binary} not found: build it (scripts/setup) or set "
                             "HELIOS_BUILD_DIR")
        return [str(binary), "--config", str(self.config_path)]

    def write_config(self) -> None:
        """TOML from self.config; a literal [backend] password goes to a password_file (what
        production configs should do, and it keeps the proxy from warning about it)."""
        cfg = copy.deepcopy(self.config)
        b = cfg.get("backend", {})
        if b.get("password") and "password_file" not in b:
            pw = self.workdir / "backend.password"
            pw.write_text(b.pop("password") + "\n")
            os.chmod(pw, 0o600)
            b["password_file"] = str(pw)
        self.config_path.write_text(toml_dumps(cfg))

    def admin_get(self, path: str, timeout: float = 5.0):
        import requests

        return requests.get(self.admin_url + path, timeout=timeout)

    @property
    def admin_token_file(self) -> Path:
        """Where the proxy writes its generated admin token (no [admin] token configured)."""
        return self.config_path.parent / "admin_token"

    @property
    def admin_token(self) -> Optional[str]:
        """The token POST reload/drain need: [admin] token, else the generated one."""
        tok = self.config.get("admin", {}).get("token")
        if tok:
            return tok
        try:
            return self.admin_token_file.read_text().splitlines()[0]
        except (OSError, IndexError):
            return None

    def admin_post(self, path: str, timeout: float = 10.0, **kw):
        """POST with the generated token (as heliosctl does) unless headers are given or a
        token is configured (tests of a configured token pass it themselves)."""
        import requests

        if "headers" not in kw and not self.config.get("admin", {}).get("token"):
            tok = self.admin_token
            if tok:
                kw["headers"] = {"Authorization": f"Bearer {tok}"}
        return requests.post(self.admin_url + path, timeout=timeout, **kw)

    @property
    def metrics_url(self) -> str:
        m = self.config.get("metrics", {})
        return f"http://{m.get('prometheus_address', '127.0.0.1')}:{m.get('prometheus_port')}/metrics"

    def metrics(self, timeout: float = 5.0) -> list[tuple[str, dict, float]]:
        """Scrapes /metrics: [(name, {label: value}, value)] from the Prometheus text format."""
        import requests

        r = requests.get(self.metrics_url, timeout=timeout)
        r.raise_for_status()
        return parse_prometheus(r.text)

    def metric(self, name: str, **labels) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0.0 if none)."""
        return sum(v for n, lb, v in self.metrics()
                   if n == name and all(lb.get(k) == str(x) for k, x in labels.items()))


_PROM_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_PROM_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict, float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _PROM_LINE.match(line)
        if not m:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\")
                  for k, v in _PROM_LABEL.findall(m.group(2) or "")}
        try:
            out.append((m.group(1), labels, float(m.group(3))))
        except ValueError:
            continue
    return out


class PgBouncerProxy(Proxy):
    """PgBouncer 1.18 configured like the HeliosProxy config dict (a stand-in for the tests)."""

    kind = "pgbouncer"
    stop_signal = signal.SIGINT  # 1.18: SIGINT = safe shutdown; SIGTERM = fast exit, status 1

    @property
    def config_path(self) -> Path:
        return self.workdir / "pgbouncer.ini"

    def unsupported(self, feature: str) -> Optional[str]:
        if feature == "kernel_data_path" or (feature == "data_path" and
                                             self.data_path != "userspace"):
            return PGBOUNCER_LACKS["kernel_data_path"]
        return PGBOUNCER_LACKS.get(feature)

    def argv(self) -> list[str]:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        return [binary, str(self.config_path)]

    def _preexec(self) -> None:
        super()._preexec()
        drop_to_postgres()  # PgBouncer refuses to run as root
        set_pdeathsig(9)  # cleared by the uid change; set again

    def write_config(self) -> None:
        if self.data_path != "userspace":
            raise DataPathUnavailable(f"data_path {self.data_path}: "
                                      + PGBOUNCER_LACKS["kernel_data_path"])
        c = self.config
        p, b = c["proxy"], c["backend"]
        cp, auth = c.get("connection_pool", {}), c.get("auth", {})
        userlist = self.workdir / "userlist.txt"
        auth_user = auth.get("auth_user") or b.get("user", AUTH_USER)
        auth_password = auth.get("auth_password") or b.get("password", "")
        userlist.write_text(f'"{auth_user}" "{auth_password}"\n')
        chown_postgres(userlist)
        os.chmod(userlist, 0o600)
        listen_host, listen_port = p["listen_address"].rsplit(":", 1)
        secs = lambda v: f"{parse_duration(v):g}"  # noqa: E731
        ini = {
            "listen_addr": listen_host.strip("[]"),
            "listen_port": listen_port,
            "unix_socket_dir": "",
            "pidfile": str(self.workdir / "pgbouncer.pid"),
            "auth_type": auth.get("type", "scram-sha-256"),
            "auth_file": str(userlist),
            "auth_user": auth_user,
            # PgBouncer reads exactly two columns: the harness's HeliosProxy query (which adds
            # VALID UNTIL and LOGIN) becomes its two-column form.
            "auth_query": (AUTH_QUERY if auth.get("auth_query", HELIOS_AUTH_QUERY) ==
                           HELIOS_AUTH_QUERY else auth["auth_query"]),
            "pool_mode": p.get("mode", "transaction"),
            "default_pool_size": b.get("max_connections", 20),
            "min_pool_size": b.get("min_connections", 0),
            "reserve_pool_size": 0,
            "max_client_conn": cp.get("max_client_connections", 10000),
            "server_reset_query": cp.get("server_reset_query", "DISCARD ALL"),
            "server_connect_timeout": secs(b.get("connection_timeout", "5s")),
            "query_wait_timeout": secs(cp.get("acquire_timeout", "5s")),
            "client_login_timeout": secs(p.get("startup_timeout", "10s")),
            "server_lifetime": secs(b.get("max_lifetime", "1h")),
            "server_idle_timeout": secs(cp.get("idle_timeout", "10m")),
            "ignore_startup_parameters": "extra_float_digits",
            "listen_backlog": 4096,
            "log_connections": 0,
            "log_disconnections": 0,
            "verbose": 0,
        }
        if auth.get("type") == "trust":
            ini["auth_type"] = "trust"
        lines = ["[databases]",
                 f"* = host={b.get('host', '127.0.0.1')} port={b.get('port', 5432)}",
                 "", "[pgbouncer]"] + [f"{k} = {v}" for k, v in ini.items()]
        self.config_path.write_text("\n".join(lines) + "\n")
        chown_postgres(self.config_path)


def start_proxy(cluster: PgCluster, overrides: Optional[dict] = None, *,
                target: Optional[str] = None, data_path: str = "userspace",
                start: bool = True, timeout: float = 30.0) -> Proxy:
    """Builds the config (defaults + overrides), creates the target's Proxy and starts it.
    The caller owns it: proxy.stop() then proxy.cleanup() (the integration fixtures do both)."""
    target = target or target_name()
    used = {cluster.port}
    lp = free_port(avoid=used)
    ap = free_port(avoid=used | {lp})
    mp = free_port(avoid=used | {lp, ap})
    cfg = deep_merge(default_config(cluster, listen_port=lp, admin_port=ap, metrics_port=mp,
                                    data_path=data_path), overrides)
    cls = PgBouncerProxy if target == "pgbouncer" else HeliosProxy
    proxy = cls(cluster, cfg, data_path=data_path)
    if start:
        try:
            proxy.start(timeout)
        except BaseException:
            proxy.cleanup()
            raise
    return proxy
