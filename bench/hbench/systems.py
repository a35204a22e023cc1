"""The systems under comparison: PostgreSQL directly, PgBouncer 1.18 and heliosproxy.

Both proxies come from the test harness (tests/harness/proxy.py) with one config dict in
HeliosProxy's schema, so they share pool size, auth (SCRAM with the secret fetched by auth_query
as the helios_auth user), TCP to the database and timeouts. The bench only adds what a benchmark
needs: logging off, the proxy's default worker setting (no `workers` key) or a fixed count for
the helios-w1/-w2 systems, a higher client limit and file-descriptor limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from harness import BENCH_USER, ROLES, ConnInfo, PgCluster, default_config, deep_merge, free_port
from harness.proxy import HeliosProxy, PgBouncerProxy, Proxy
from harness.util import drop_to_postgres, raise_nofile, set_pdeathsig

BENCH_DB = "bench"

# PostgreSQL listens on a second loopback address for direct connections and for PgBouncer.
# heliosproxy's same-host bypass, when attached (true; "auto" leaves it off on current kernels),
# takes every local connection to or from the database address:port it uses, whoever makes it,
# for as long as a heliosproxy runs (docs/datapath.md, "When auto attaches it"); the bench keeps
# every system running, so direct and PgBouncer reach the same server through an address the
# bypass does not list, and are measured as they run without heliosproxy on the host.
PG_LISTEN = "127.0.0.1,127.0.0.2"
OTHERS_PG_HOST = "127.0.0.2"


class BenchHelios(HeliosProxy):
    nofile = 65536
    binary: Optional[str] = None  # another heliosproxy build (the helios-baseline system)

    def argv(self) -> list[str]:
        if not self.binary:
            return super().argv()
        return [self.binary, "--config", str(self.config_path)]

    def _preexec(self) -> None:
        raise_nofile(self.nofile)
        set_pdeathsig(9)


class BenchPgBouncer(PgBouncerProxy):
    nofile = 65536

    def _preexec(self) -> None:
        raise_nofile(self.nofile)
        drop_to_postgres()
        set_pdeathsig(9)

    def write_config(self) -> None:
        super().write_config()
        with open(self.config_path, "a") as f:
            # logging off, as for heliosproxy (log_connections/log_disconnections/verbose are 0
            # already); stats_period only feeds the log.
            f.write("log_stats = 0\nlog_pooler_errors = 0\n")


@dataclass
class SystemSpec:
    name: str  # "direct", "pgbouncer", "helios", "helios-w1", "helios-kernel", ...
    label: str
    kind: str  # "direct" | "pgbouncer" | "helios"
    data_path: str = "userspace"
    binary_env: str = ""  # helios: the environment variable naming another heliosproxy binary
    workers: Optional[int] = None  # helios: [proxy] workers; None = not set (the proxy's default)
    only: Optional[frozenset] = None  # the scenarios it runs in; None = all

    def runs(self, scenario: str) -> bool:
        return self.only is None or scenario in self.only


# The fixed worker counts beside the default (issue 18): CPU per transaction at saturation and
# at a fixed rate, so only the scenarios that measure those.
WORKER_SCENARIOS = frozenset({"select_simple", "rate_10k"})


SPECS = {
    "direct": SystemSpec("direct", "PostgreSQL direct", "direct"),
    "pgbouncer": SystemSpec("pgbouncer", "PgBouncer 1.18", "pgbouncer"),
    "helios": SystemSpec("helios", "heliosproxy", "helios"),
    # The same scenarios on an older build, to compare a change's cost in one run:
    # HELIOS_BASELINE_BIN=/path/to/old/heliosproxy bench/run --systems helios-baseline,helios
    "helios-baseline": SystemSpec("helios-baseline", "heliosproxy (baseline build)", "helios",
                                  binary_env="HELIOS_BASELINE_BIN"),
    "helios-kernel": SystemSpec("helios-kernel", "heliosproxy (kernel path)", "helios",
                                data_path="kernel"),
    "helios-w1": SystemSpec("helios-w1", "heliosproxy, workers = 1 (fixed)", "helios", workers=1,
                            only=WORKER_SCENARIOS),
    "helios-w2": SystemSpec("helios-w2", "heliosproxy, workers = 2 (fixed)", "helios", workers=2,
                            only=WORKER_SCENARIOS),
}

# What a full run compares; --quick keeps the default configuration only.
FULL_SYSTEMS = "direct,pgbouncer,helios,helios-w1,helios-w2"
QUICK_SYSTEMS = "direct,pgbouncer,helios"


@dataclass
class ProxySettings:
    pool_size: int = 20
    max_clients: int = 10_000
    nofile: int = 65536
    workers: Optional[int] = None  # None = the system's own (SystemSpec.workers)
    acquire_timeout: str = "10s"
    overrides: dict = field(default_factory=dict)  # merged into the config last (tenants, ...)


@dataclass
class System:
    """One system under test. For a proxy, start() (re)starts the process with `settings`."""

    spec: SystemSpec
    cluster: PgCluster
    proxy: Optional[Proxy] = None
    settings: ProxySettings = field(default_factory=ProxySettings)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def is_proxy(self) -> bool:
        return self.spec.kind != "direct"

    @property
    def pid(self) -> Optional[int]:
        """The proxy's pid (None for direct or when not running)."""
        if self.proxy is None or self.proxy.proc is None or self.proxy.proc.poll() is not None:
            return None
        return self.proxy.proc.pid

    def alive(self) -> bool:
        return not self.is_proxy or self.pid is not None

    def conninfo(self, user: str = BENCH_USER, dbname: str = BENCH_DB, **extra) -> ConnInfo:
        if not self.is_proxy:
            c = self.cluster
            return ConnInfo(OTHERS_PG_HOST, c.port, user, ROLES[user].password, dbname,
                            {"connect_timeout": 10, **extra})
        return self.proxy.conninfo(user, dbname, **extra)

    def config(self, s: ProxySettings) -> dict:
        used = {self.cluster.port}
        lp = free_port(avoid=used)
        ap = free_port(avoid=used | {lp})
        mp = free_port(avoid=used | {lp, ap})
        base = default_config(self.cluster, listen_port=lp, admin_port=ap, metrics_port=mp,
                              data_path=self.spec.data_path)
        cfg = deep_merge(base, {
            "proxy": {"log_level": "error" if self.spec.data_path ==
                      "userspace" else "warn", "drain_timeout": "5s"},
            "backend": {"max_connections": s.pool_size, "min_connections": 0,
                        **({"host": OTHERS_PG_HOST} if self.spec.kind == "pgbouncer" else {})},
            "connection_pool": {"max_client_connections": s.max_clients,
                                "acquire_timeout": s.acquire_timeout},
        })
        workers = s.workers if s.workers is not None else self.spec.workers
        if workers is None:
            cfg["proxy"].pop("workers", None)  # the proxy's default, whatever it is
        else:
            # A fixed count: every worker awake, not a ceiling for workers that follow the load.
            cfg["proxy"]["workers"] = workers
            cfg["proxy"]["worker_scaling"] = "fixed"
        return deep_merge(cfg, s.overrides)

    def start(self, settings: Optional[ProxySettings] = None) -> "System":
        if settings is not None:
            self.settings = settings
        if not self.is_proxy:
            return self
        self.stop()
        s = self.settings
        cls = BenchPgBouncer if self.spec.kind == "pgbouncer" else BenchHelios
        proxy = cls(self.cluster, self.config(s), data_path=self.spec.data_path)
        proxy.nofile = s.nofile
        if self.spec.binary_env:
            proxy.binary = os.environ.get(self.spec.binary_env) or None
            if not proxy.binary:
                raise RuntimeError(f"{self.spec.name}: set {self.spec.binary_env} to a heliosproxy")
        try:
            proxy.start(30.0)
        except BaseException:
            proxy.cleanup()
            raise
        self.proxy = proxy
        return self

    def stop(self) -> Optional[int]:
        """Graceful stop; returns the exit code (None if it was not running)."""
        if self.proxy is None:
            return None
        p, self.proxy = self.proxy, None
        try:
            return p.stop(expect_exit=None)
        finally:
            p.cleanup()

    def stderr_tail(self, lines: int = 20) -> str:
        return self.proxy.stderr_tail(lines) if self.proxy is not None else ""

    def version(self) -> str:
        import subprocess

        from harness import helios_binary
        try:
            if self.spec.kind == "pgbouncer":
                out = subprocess.run(["pgbouncer", "--version"], capture_output=True, text=True,
                                     timeout=10).stdout
                return out.splitlines()[0] if out else "?"
            if self.spec.kind == "helios":
                binary = (os.environ.get(self.spec.binary_env) if self.spec.binary_env
                          else None) or str(helios_binary())
                out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                     timeout=10).stdout
                return f"heliosproxy {out.strip()} ({binary})"
            out = subprocess.run([os.path.join(os.environ.get("HELIOS_PG_BIN",
                                                              "/usr/lib/postgresql/15/bin"),
                                               "postgres"), "--version"],
                                 capture_output=True, text=True, timeout=10).stdout
            return out.strip()
        except (OSError, subprocess.SubprocessError) as e:
            return f"? ({e})"
