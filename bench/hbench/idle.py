"""Idle-client scenarios: memory per idle client, a pgbench run beside them, and whether every
idle client still works afterwards (each runs SELECT 1).

A proxy is restarted fresh for each measurement and warmed up (a short pgbench fills its pool),
then: RSS before -> open N logged-in idle clients -> RSS with N -> (RSS with N - RSS before) / N.
For PostgreSQL itself the cost is per backend process: the summed Rss and Pss
(/proc/PID/smaps_rollup) of the backends the idle clients created, divided by their number.
That is not comparable to a pooler's per-client figure (one process per connection, capped by
max_connections) and the report says so.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from pathlib import Path
from typing import Optional

from harness.util import raise_nofile, set_pdeathsig

from . import procfs
from .runner import Bench, PgbenchSpec, run_pgbench_once
from .systems import ProxySettings, System

OPENER = Path(__file__).with_name("idle_clients.py")
IDLE_APP = "bench_idle"


class OpenerError(RuntimeError):
    pass


class IdleOpener:
    """The idle_clients.py child process and its line protocol (every read bounded)."""

    def __init__(self, system: System, count: int, sources: list[str], timeout: float,
                 concurrency: int = 200) -> None:
        ci = system.conninfo()
        nofile = count + 4096
        argv = ["/usr/bin/python3", str(OPENER), "--host", ci.host, "--port", str(ci.port),
                "--user", ci.user, "--dbname", ci.dbname, "--count", str(count),
                "--sources", ",".join(sources), "--concurrency", str(concurrency),
                "--application-name", IDLE_APP,
                "--timeout", str(timeout)]
        env = dict(os.environ, PGPASSWORD=ci.password)

        def pre() -> None:
            raise_nofile(nofile)
            set_pdeathsig(9)

        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env,
                                     preexec_fn=pre)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)

    def read(self, timeout: float) -> dict:
        if not self._sel.select(timeout):
            raise OpenerError(f"idle-client opener gave no answer within {timeout:.0f}s")
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()[-2000:] if self.proc.poll() is not None else ""
            raise OpenerError(f"idle-client opener exited ({self.proc.poll()}): {err}")
        return json.loads(line)

    def command(self, cmd: str, timeout: float) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.read(timeout)

    def close(self) -> Optional[dict]:
        out = None
        try:
            if self.proc.poll() is None:
                out = self.command("close", 60)
        except (OpenerError, BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._sel.close()
        return out


def sources(n: int) -> list[str]:
    return [f"127.0.0.{i}" for i in range(2, 2 + n)]


def _pss_rss(pids: set[int]) -> tuple[int, int]:
    pss = rss = 0
    for pid in pids:
        m = procfs.smaps_rollup(pid)
        pss += m.get("Pss", 0)
        rss += m.get("Rss", 0)
    return pss, rss


def _idle_backends(b: Bench) -> set[int]:
    """Backends of the idle clients (the opener sets application_name)."""
    rows = b.cluster.query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client "
                           "backend' AND application_name = %s", (IDLE_APP,))
    return {r[0] for r in rows}


def measure_idle(b: Bench, system: System, count: int, *, rep: int, label: str,
                 settings: Optional[ProxySettings] = None, open_timeout: float = 300.0,
                 check: bool = True) -> dict:
    """One idle-client measurement on `system` (restarted fresh if it is a proxy)."""
    rec: dict = {"scenario": label, "system": system.name, "rep": rep, "clients": count}
    errors: list[str] = []
    if system.is_proxy:
        system.start(settings)
    spec = PgbenchSpec(b.plan.clients, b.plan.jobs, log_latency=False)
    quiet = b.wait_quiet()
    rec["quiet_before"] = quiet.quiet
    # warm the pool (and the database) so "before" is a proxy that has served load
    # (at least 3 s: a shorter warm-up leaves part of the proxy's buffers untouched, and they
    # would be counted as the idle clients' memory)
    w = run_pgbench_once(b, label, system, spec, max(3, b.plan.warmup_seconds), rep, 0,
                         record=False)
    if not w["ok"]:
        errors.append(f"warm-up: {w['error']}")
    time.sleep(0.5)
    rss0 = procfs.rss_bytes(system.pid) if system.pid else None
    pss0 = procfs.smaps_rollup(system.pid).get("Pss") if system.pid else None
    rec.update({"rss_before": rss0, "pss_before": pss0})
    # PostgreSQL's pg_hba admits 127.0.0.1 only; it gets few enough clients for one address
    srcs = sources(b.plan.idle_sources) if system.is_proxy else []
    opener = IdleOpener(system, count, srcs, open_timeout)
    try:
        opened = opener.read(open_timeout + 120)
        rec["opened"] = opened
        if opened.get("errors"):
            errors.append(f"{opened['errors']} of {count} logins failed: "
                          f"{opened.get('error_samples')}")
        time.sleep(1.0)
        if system.pid:
            rss1 = procfs.rss_bytes(system.pid)
            pss1 = procfs.smaps_rollup(system.pid).get("Pss")
            n = max(1, opened["ok"])
            rec.update({"rss_with_idle": rss1, "pss_with_idle": pss1,
                        "bytes_per_client": (rss1 - rss0) / n,
                        "pss_bytes_per_client": (pss1 - pss0) / n if pss0 and pss1 else None})
        else:
            new = _idle_backends(b)
            pss, rss = _pss_rss(new)
            rec.update({"backends": len(new), "backend_pss_sum": pss, "backend_rss_sum": rss,
                        "bytes_per_client": pss / len(new) if new else None,
                        "rss_bytes_per_client": rss / len(new) if new else None,
                        "per": "PostgreSQL backend process (Pss; Rss beside)"})
        # pgbench beside the idle clients
        pr = run_pgbench_once(b, label, system, spec, b.plan.seconds, rep, 0)
        pr.pop("_latencies", None)
        rec["pgbench"] = {k: pr.get(k) for k in ("ok", "error", "tps", "processed",
                                                 "latency_avg_ms", "proxy_us_per_txn",
                                                 "other_avg_cores", "other_max_cores",
                                                 "noisy")}
        if not pr["ok"]:
            errors.append(f"pgbench beside the idle clients: {pr['error']}")
        st = opener.command("status", 60)
        rec["status_after_pgbench"] = st
        if st.get("lost"):
            errors.append(f"{st['lost']} idle clients were disconnected: {st['lost_samples']}")
        if check:
            ck = opener.command(f"check 1000 {open_timeout:.0f}", open_timeout + 120)
            rec["check"] = ck
            if ck.get("errors"):
                errors.append(f"SELECT 1 failed on {ck['errors']} idle clients: "
                              f"{ck['error_samples']}")
            if system.pid:
                rec["rss_after_check"] = procfs.rss_bytes(system.pid)
    except OpenerError as e:
        errors.append(str(e))
    finally:
        rec["closed"] = opener.close()
    dead = b.ensure_alive(system)
    if dead:
        errors.append(dead)
    rec["ok"] = not errors
    rec["errors"] = errors
    per = rec.get("bytes_per_client")
    b.log(f"  {label:<16} {system.name:<10} rep {rep}: {rec.get('opened', {}).get('ok', 0)}"
          f"/{count} idle clients in {rec.get('opened', {}).get('seconds', 0):.1f}s, "
          + (f"{per:.0f} B/client" if per is not None else "no memory figure")
          + (f", tps beside {rec['pgbench']['tps']:.0f}" if "pgbench" in rec else "")
          + ("" if not errors else f", ERRORS: {errors[0][:300]}"))
    for e in errors:
        b.error(f"{label} {system.name} rep {rep}: {e}")
    return rec


FD_MARGIN = 2048  # pool backends, listeners, the admin/metrics sockets, logs, epoll/io_uring


def feasible_clients(want: int) -> tuple[int, Optional[str]]:
    """How many idle clients one proxy process (and the opener) can hold here: RLIMIT_NOFILE
    cannot be raised past the hard limit without CAP_SYS_RESOURCE (containers often lack it).
    Returns (count, None) or (reduced count, why)."""
    ceiling = procfs.nofile_ceiling()
    if want + FD_MARGIN <= ceiling:
        return want, None
    n = max(0, ceiling - FD_MARGIN)
    return n, (f"reduced from {want:,} to {n:,} clients: RLIMIT_NOFILE cannot go past "
               f"{ceiling:,} here (the hard limit; this process lacks CAP_SYS_RESOURCE to "
               "raise it). For the full count, run as a root that has it, or from a shell whose "
               "`ulimit -Hn` is high enough")


def run_idle(b: Bench) -> None:
    """10,000 idle clients (plan.idle_clients) per proxy, repeated; PostgreSQL per backend."""
    p = b.plan
    count, why = feasible_clients(p.idle_clients)
    if why:
        b.extra.setdefault("limits", {})["idle"] = why
        b.log(f"idle: {why}")
    normal = ProxySettings(pool_size=p.pool_size, max_clients=count + 1000,
                           nofile=count + FD_MARGIN)
    systems = [s for s in b.systems.values() if s.spec.runs("idle")]
    b.log(f"idle_{p.idle_clients}: {p.idle_clients} idle clients per proxy "
          f"({p.direct_idle_clients} for PostgreSQL), {p.reps} reps")
    recs = []
    for rep in range(p.reps):
        k = rep % len(systems)
        for s in systems[k:] + systems[:k]:
            n = count if s.is_proxy else p.direct_idle_clients
            recs.append(measure_idle(b, s, n, rep=rep, label="idle", settings=normal))
    b.extra["idle"] = recs
    for s in systems:  # back to the normal settings for what follows
        if s.is_proxy:
            s.start(ProxySettings(pool_size=p.pool_size))
    b.save_json()


def run_huge(b: Bench) -> None:
    """100,000 idle clients on plan.huge_pool_size backends, once per proxy, bounded in time."""
    p = b.plan
    if not p.huge_idle_clients:
        b.extra.setdefault("skipped", {})["idle_huge"] = "not in this plan (--quick)"
        return
    count, why = feasible_clients(p.huge_idle_clients)
    if why:
        b.extra.setdefault("limits", {})["idle_huge"] = why
        b.log(f"idle_huge: {why}")
    settings = ProxySettings(pool_size=p.huge_pool_size, max_clients=count + 1000,
                             nofile=count + 4096)
    recs = []
    b.log(f"idle_huge: {count} idle clients on {p.huge_pool_size} backends, "
          f"once per proxy (bounded: {p.huge_timeout_s:.0f}s to open, as long to check)")
    for s in b.systems.values():
        if not s.is_proxy or not s.spec.runs("idle_huge"):
            continue
        try:
            r = measure_idle(b, s, count, rep=0, label="idle_huge", settings=settings,
                             open_timeout=p.huge_timeout_s)
            r["requested_clients"] = p.huge_idle_clients
            r["limited_by"] = why
            recs.append(r)
        except Exception as e:  # noqa: BLE001 - e.g. the proxy does not start with these limits
            b.error(f"idle_huge {s.name}: {e}")
            recs.append({"scenario": "idle_huge", "system": s.name, "ok": False,
                         "errors": [str(e)], "clients": count,
                         "requested_clients": p.huge_idle_clients, "limited_by": why})
        s.start(ProxySettings(pool_size=p.pool_size))
    b.extra["idle_huge"] = recs
    b.save_json()
