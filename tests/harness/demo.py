"""scripts/demo: a throwaway PostgreSQL, heliosproxy in front of it (transaction mode, 10 backend
connections, tenant quotas on), 500 pgbench clients for ~10 s, then the quota effects and two
instances sharing a tenant quota through Redis (demo_fleet.py); prints what happened and stops
everything it started. Exit status 1 if the load had errors or a quota did not hold.

Environment: HELIOS_DEMO_TARGET=pgbouncer runs the same load through PgBouncer (no quotas);
HELIOS_DEMO_SECONDS (default 10) and HELIOS_DEMO_CLIENTS (default 500) size the main load.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from .clients import pgbench
from .demo_fleet import fleet_scene
from .pgcluster import APP_USER, BENCH_USER, ROLES, PgCluster
from .proxy import ProxyError, start_proxy
from .sampler import BackendSampler
from .wire import LoginError, RawConn

POOL = 10
SMALL_TENANT, SMALL_LIMIT = "tenant_small_acme", 5
METERED_TENANT, METERED_QPS, METERED_BURST = "tenant_metered_globex", 200, 20

QUOTAS = {
    "tenant_quotas": {
        "enabled": True,
        "identifier": "application_name",
        "limits": [
            {"tenant_pattern": "tenant_small_*", "max_connections": SMALL_LIMIT},
            # A small burst and a long enough wait: over its rate the tenant's statements queue
            # (the bucket refills at max_qps) instead of being refused with 53400.
            {"tenant_pattern": "tenant_metered_*", "max_qps": METERED_QPS,
             "qps_burst": METERED_BURST, "qps_max_wait": "5s"},
        ],
    },
}


def say(msg: str = "") -> None:
    print(msg, flush=True)


class AdminPoller:
    """Polls /api/v1/pool/stats during the load (HeliosProxy only; silent if not there yet)."""

    def __init__(self, proxy) -> None:
        self.proxy = proxy
        self.max_clients = None
        self.max_active = None
        self.last = None
        self.error = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = self.proxy.admin_get("/api/v1/pool/stats", timeout=2)
                if r.status_code == 200:
                    d = r.json()
                    self.last = d
                    for key, attr in (("client_connections", "max_clients"),
                                      ("active", "max_active")):
                        if isinstance(d.get(key), (int, float)):
                            cur = getattr(self, attr)
                            setattr(self, attr, d[key] if cur is None else max(cur, d[key]))
                else:
                    self.error = f"HTTP {r.status_code}"
            except Exception as e:  # noqa: BLE001 - the API may not exist yet
                self.error = str(e).splitlines()[0][:120]
            self._stop.wait(0.5)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)


def connection_quota(proxy) -> list[str]:
    """Opens SMALL_LIMIT + 1 connections as tenant SMALL_TENANT; reports what each got."""
    conns, lines = [], []
    ok = 0
    try:
        for i in range(SMALL_LIMIT + 1):
            c = RawConn(proxy.host, proxy.port)
            try:
                c.login(APP_USER, ROLES[APP_USER].password, "app",
                        extra={"application_name": SMALL_TENANT})
                conns.append(c)
                ok += 1
            except LoginError as e:
                c.close()
                lines.append(f"     connection #{i + 1}: refused with {e.fields.get('C')}: "
                             f"{e.fields.get('M')}")
        lines.insert(0, f"     {ok} of {SMALL_LIMIT + 1} connections accepted"
                     + ("" if ok == SMALL_LIMIT else "   !! expected exactly "
                        f"{SMALL_LIMIT}"))
    finally:
        for c in conns:
            c.close()
    return lines


def main() -> int:
    target = os.environ.get("HELIOS_DEMO_TARGET", os.environ.get("HELIOS_TEST_TARGET", "helios"))
    seconds = int(os.environ.get("HELIOS_DEMO_SECONDS", "10"))
    clients = int(os.environ.get("HELIOS_DEMO_CLIENTS", "500"))
    # SIGTERM/SIGINT unwind through the finally blocks (the reaper covers SIGKILL).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    name = "heliosproxy" if target == "helios" else "PgBouncer (stand-in: no tenant quotas)"

    say("== HeliosProxy demo")
    t_start = time.monotonic()
    with PgCluster(max_connections=100) as pg:
        pg.pgbench_init("bench", scale=1)
        say(f"   PostgreSQL 15 (throwaway) on {pg.host}:{pg.port}, data in {pg.base}")
        try:
            proxy = start_proxy(pg, {"proxy": {"mode": "transaction"},
                                     "backend": {"max_connections": POOL}, **QUOTAS},
                                target=target)
        except ProxyError as e:
            say(f"!! could not start {name}:\n{e}")
            return 1
        load_ok, r, stopped = False, None, ""
        try:
            quotas = ("no tenant quotas" if proxy.unsupported("tenant_quotas") else
                      f"tenant quotas: {SMALL_TENANT} max_connections={SMALL_LIMIT}, "
                      f"{METERED_TENANT} max_qps={METERED_QPS}")
            say(f"   {name} on {proxy.host}:{proxy.port}: transaction mode, {POOL} backend "
                f"connections per pool, {quotas}")
            say()
            say(f"== Load: pgbench -S, {clients} clients, {seconds} s, through the proxy")
            ci = proxy.conninfo(BENCH_USER, "bench", application_name="demo_load")
            admin = AdminPoller(proxy) if target == "helios" else None
            with BackendSampler(pg, interval=0.05) as sampler:
                if admin:
                    admin.__enter__()
                try:
                    r = pgbench(ci, clients=clients, jobs=2, seconds=seconds, select_only=True,
                                timeout=seconds + 90)
                finally:
                    if admin:
                        admin.__exit__()
            peak = sampler.max_by_user.get(BENCH_USER, 0)
            say(f"   client connections         {r.clients}")
            if admin and admin.max_clients is not None:
                say(f"     (proxy admin API peak)   {admin.max_clients}")
            say(f"   peak backend connections   {peak}   (pg_stat_activity every 50 ms, "
                f"{sampler.samples} samples; pool max {POOL})")
            say(f"   transactions               {r.processed}   ({r.tps:.0f} tps)")
            lat = f"{r.latency_avg_ms:.1f} ms" if r.latency_avg_ms is not None else "n/a"
            say(f"   latency average            {lat}")
            say(f"   failed transactions        {r.failed}")
            say(f"   errors                     {len(r.errors)}"
                + (f"   first: {r.errors[0]}" if r.errors else ""))
            load_ok = r.clean and r.clients == clients and peak <= POOL
            say()

            # ---- Tenant quotas (HeliosProxy only) ------------------------------------------
            say("== Tenant quotas")
            if proxy.unsupported("tenant_quotas"):
                say(f"   skipped: {proxy.unsupported('tenant_quotas')}")
            else:
                say(f"   {SMALL_TENANT}: max_connections = {SMALL_LIMIT}")
                for line in connection_quota(proxy):
                    say(line)
                say(f"   {METERED_TENANT}: max_qps = {METERED_QPS} (burst {METERED_BURST}, "
                    "qps_max_wait 5s), driven by pgbench -R 1000 (10 clients, 5 s)")
                q = pgbench(proxy.conninfo(BENCH_USER, "bench", application_name=METERED_TENANT),
                            clients=10, jobs=2, seconds=5, select_only=True, rate=1000,
                            timeout=60)
                held = abs(q.tps - METERED_QPS) <= 0.15 * METERED_QPS
                say(f"     achieved {q.tps:.0f} tps ({q.processed} transactions, "
                    f"{q.failed} failed, {len(q.errors)} errors): "
                    + ("held at its limit" if held else
                       f"!! not held at {METERED_QPS} qps"))
                if admin and admin.last is not None:
                    try:
                        t = proxy.admin_get("/api/v1/tenants/stats", timeout=2)
                        if t.status_code == 200:
                            for ten in t.json().get("tenants", []):
                                say(f"   admin API: tenant {ten.get('id')}: "
                                    f"connections {ten.get('connections')}/"
                                    f"{ten.get('max_connections')}, qps "
                                    f"{ten.get('current_qps')}/{ten.get('max_qps')}")
                    except Exception:  # noqa: BLE001 - optional
                        pass
            say()

            # ---- The fleet: two instances, one tenant quota (HeliosProxy only) --------------
            if target == "helios":
                say("== Fleet: two instances share one tenant's quota through Redis")
                load_ok = fleet_scene(pg, say) and load_ok
                say()
        finally:
            try:
                proxy.stop(expect_exit=0)
                stopped = f"{name} stopped cleanly (exit 0)"
            except ProxyError as e:
                stopped = f"{name} did not stop cleanly: {str(e).splitlines()[0]}"
                load_ok = False
            finally:
                proxy.cleanup()
    say(f"== {stopped}; PostgreSQL stopped and removed. "
        f"({time.monotonic() - t_start:.0f} s in all)")
    if not load_ok:
        say("!! the load did not run clean: " + (r.summary() if r else "pgbench did not finish"))
        return 1
    say("== OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
