"""The bench context (cluster, systems, output dir, log) and one measured pgbench run:
quiet-machine wait, CPU accounting from /proc around the run, latency log, interference check
and repeat, errors recorded with the proxy's stderr tail."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from harness import PgCluster, pgbench

from . import latency, noise, procfs
from .plan import Plan
from .systems import System


def postmaster_pid(cluster: PgCluster) -> Optional[int]:
    try:
        return int((cluster.datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Bench:
    plan: Plan
    cluster: PgCluster
    systems: dict[str, System]
    out: Path
    runs: list[dict] = field(default_factory=list)  # every pgbench run (results.json)
    extra: dict = field(default_factory=dict)  # idle scenarios, skips, machine info
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.raw = self.out / "raw"
        self.raw.mkdir(parents=True, exist_ok=True)
        self._logf = open(self.out / "bench.log", "a")
        self.pm_pid = postmaster_pid(self.cluster)

    def log(self, msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, file=sys.stderr, flush=True)
        self._logf.write(line + "\n")
        self._logf.flush()

    def error(self, msg: str) -> None:
        self.errors.append(msg)
        self.log("ERROR " + msg)

    def roots(self) -> list[int]:
        return noise.bench_roots(self.pm_pid)

    def db_cpu(self) -> float:
        return procfs.tree_cpu([self.pm_pid]) if self.pm_pid else 0.0

    def wait_quiet(self) -> noise.QuietResult:
        return noise.wait_quiet(self.roots, quiet=self.plan.quiet_cores,
                                max_wait=self.plan.max_quiet_wait_s,
                                sample=self.plan.quiet_sample_s, log=self.log)

    def ensure_alive(self, system: System) -> Optional[str]:
        """None if the system is up; else why not, after restarting it for the next runs."""
        if system.alive():
            return None
        rc = system.proxy.proc.poll() if system.proxy and system.proxy.proc else None
        why = f"{system.label} is not running (exit {rc}); stderr tail:\n{system.stderr_tail(30)}"
        try:
            system.start()
        except Exception as e:  # noqa: BLE001 - reported
            why += f"\nrestart failed: {e}"
        return why

    def save_json(self) -> None:
        (self.out / "results.json").write_text(json.dumps(
            {"plan": self.plan.__dict__, "runs": self.runs, "extra": self.extra,
             "errors": self.errors}, indent=1, default=str))


@dataclass
class PgbenchSpec:
    """One pgbench scenario's arguments (the same for every system)."""

    clients: int
    jobs: int
    select_only: bool = True
    protocol: str = "simple"
    rate: Optional[int] = None
    connect_each: bool = False
    log_latency: bool = True
    sampling_rate: Optional[float] = None  # None = log every transaction
    script: Optional[str] = None  # pgbench -f script instead of the built-in (select_only off)


@dataclass
class Pinning:
    """CPU sets for the pinned scenario (None = unpinned)."""

    db_and_client: set[int]
    proxy: set[int]


def _with_affinity(cpus: Optional[set[int]], fn: Callable[[], object]):
    """Calls fn with this thread's affinity set to cpus (children forked in fn inherit it)."""
    if cpus is None:
        return fn()
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        return fn()
    finally:
        os.sched_setaffinity(0, old)


def run_pgbench_once(b: Bench, scenario: str, system: System, spec: PgbenchSpec, seconds: int,
                     rep: int, attempt: int, pin: Optional[Pinning] = None,
                     record: bool = True) -> dict:
    """One pgbench run with CPU accounting. Returns the run record (not yet appended)."""
    ci = system.conninfo()
    tag = f"{scenario}-{system.name}-r{rep}a{attempt}" if record else \
        f"warmup-{scenario}-{system.name}"
    extra: list[str] = []
    log_prefix = None
    if record and spec.log_latency:
        log_prefix = str(b.raw / f"{tag}.txlog")
        extra += ["-l", "--log-prefix", log_prefix]
        if spec.sampling_rate:
            extra += [f"--sampling-rate={spec.sampling_rate}"]
    quiet = b.wait_quiet() if record else None
    all_cpus = os.sched_getaffinity(0)
    if pin is not None:
        if b.pm_pid:
            procfs.set_tree_affinity(b.pm_pid, pin.db_and_client)
        if system.pid:
            procfs.set_affinity(system.pid, pin.proxy)
    mon = noise.Monitor(b.roots, interval=1.0).start()
    t0 = os.times()
    proxy0 = procfs.proc_cpu(system.pid) if system.pid else None
    db0 = b.db_cpu()
    try:
        run = _with_affinity(pin.db_and_client if pin else None, lambda: pgbench(
            ci, clients=spec.clients, jobs=spec.jobs, seconds=seconds,
            select_only=spec.select_only and spec.script is None, script=spec.script,
            protocol=spec.protocol, rate=spec.rate,
            connect_each=spec.connect_each, extra=extra, background=True,
            timeout=seconds + 120 + spec.clients / 10))
        r = run.result()
        err = None
    except Exception as e:  # noqa: BLE001 - a harness error is a failed run, reported
        r, err = None, f"pgbench failed to run: {e}"
    proxy1 = procfs.proc_cpu(system.pid) if system.pid else None
    db1 = b.db_cpu()
    t1 = os.times()
    mon.stop()
    if pin is not None:
        if b.pm_pid:
            procfs.set_tree_affinity(b.pm_pid, all_cpus)
        if system.pid:
            procfs.set_affinity(system.pid, all_cpus)
    rec: dict = {"scenario": scenario, "system": system.name, "rep": rep, "attempt": attempt}
    if r is not None:
        (b.raw / f"{tag}.pgbench.txt").write_text(
            f"$ {' '.join(r.argv)}\nrc={r.rc}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}")
        if not r.clean:
            err = r.describe()
        if r.errors and not err:
            err = r.describe()
    dead = b.ensure_alive(system)
    if dead:
        err = (err + "\n" if err else "") + dead
    rec.update({"rc": r.rc if r else None, "error_lines": len(r.errors) if r else None,
                "proxy_died": bool(dead)})
    elapsed = r.elapsed if r is not None else 0.0
    processed = r.processed if r is not None else 0
    machine = mon.last.machine.busy - mon.first.machine.busy
    ours = mon.last.ours - mon.first.ours
    pgbench_cpu = (t1.children_user + t1.children_system) - (t0.children_user + t0.children_system)
    proxy_cpu = (proxy1.own - proxy0.own) if proxy0 and proxy1 else None
    rec.update({
        "ok": err is None, "error": err,
        "tps": r.tps if r else 0.0, "processed": processed, "failed": r.failed if r else 0,
        "latency_avg_ms": r.latency_avg_ms if r else None,
        "seconds": elapsed,
        "proxy_cpu_s": proxy_cpu,
        "proxy_us_per_txn": proxy_cpu / processed * 1e6 if proxy_cpu is not None and processed
        else None,
        "db_cpu_s": db1 - db0, "pgbench_cpu_s": pgbench_cpu,
        "machine_busy_s": machine, "unattributed_s": machine - ours,
        "unattributed_us_per_txn": (machine - ours) / processed * 1e6 if processed else None,
        "other_avg_cores": mon.other_avg, "other_max_cores": mon.other_max,
        "noisy": mon.interfered(b.plan.interference_cores),
        "quiet_wait_s": quiet.waited_s if quiet else None,
        "quiet_before": quiet.quiet if quiet else None,
        "pinned": pin is not None,
    })
    if log_prefix:
        lat = latency.read_logs(log_prefix)
        rec["latency"] = latency.summary(lat.latencies_ms)
        rec["_latencies"] = lat.latencies_ms  # dropped before results.json
    return rec


def run_pgbench(b: Bench, scenario: str, system: System, spec: PgbenchSpec, rep: int,
                pin: Optional[Pinning] = None) -> dict:
    """A measured run, repeated (up to plan.retries) while other load interferes."""
    for attempt in range(b.plan.retries + 1):
        rec = run_pgbench_once(b, scenario, system, spec, b.plan.seconds, rep, attempt, pin)
        if rec["ok"] and rec["noisy"] and attempt < b.plan.retries:
            b.log(f"  {scenario} {system.name} rep {rep}: other load peaked at "
                  f"{rec['other_max_cores']:.2f} cores (> {b.plan.interference_cores}), "
                  "repeating")
            continue
        break
    line = (f"  {scenario:<16} {system.name:<10} rep {rep}: tps {rec['tps']:.0f}"
            + (f" lat {rec['latency_avg_ms']:.3f} ms" if rec["latency_avg_ms"] else "")
            + (f" proxy {rec['proxy_us_per_txn']:.1f} us/txn" if rec["proxy_us_per_txn"]
               else "")
            + f" other {rec['other_avg_cores']:.2f}/{rec['other_max_cores']:.2f} cores"
            + (" NOISY" if rec["noisy"] else ""))
    b.log(line)
    if not rec["ok"]:
        b.error(f"{scenario} {system.name} rep {rep}: {rec['error']}")
    return rec


def _only_short(rec: dict) -> bool:
    """A warm-up too short for many clients to log in processes nothing: not an error."""
    return (rec.get("processed") == 0 and rec.get("rc") == 0 and rec.get("error_lines") == 0
            and rec.get("failed") == 0 and not rec.get("proxy_died"))


def warmup(b: Bench, scenario: str, system: System, spec: PgbenchSpec,
           pin: Optional[Pinning] = None) -> None:
    if b.plan.warmup_seconds <= 0:
        return
    rec = run_pgbench_once(b, scenario, system, spec, b.plan.warmup_seconds, 0, 0, pin,
                           record=False)
    if not rec["ok"] and not _only_short(rec):
        b.error(f"warm-up {scenario} {system.name}: {rec['error']}")
