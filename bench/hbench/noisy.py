"""Noisy neighbour (issue 3's scenario): tenant A (free tier) runs 200 clients flat out on a
shared pool far smaller than its demand while tenant B (premium, a dedicated pool) runs 10.
B's tps and p99 beside A are compared with B alone; goal: tps >= 80% of alone, p99 <= 3x alone.

heliosproxy: tenants from application_name; free_* -> shared tier pool of 8 (weight 1),
premium_* -> dedicated pool of 10 (weight 4). PgBouncer has no tenants: both share one pool of
18 backends (the same total), which shows what happens without isolation. PostgreSQL directly
cannot take 210 clients with max_connections 200 and has no pools: not run.

Each transaction is `SELECT pg_sleep(0.005)` so a backend is held 5 ms and pool sizes matter.
Latency over time (p50/p99 per 0.5 s) of both tenants comes from pgbench's transaction logs.
"""

from __future__ import annotations

import time

from harness import pgbench

from . import latency, noise
from .runner import Bench
from .systems import ProxySettings, System

SCRIPT = "SELECT pg_sleep(0.005);\n"
A_CLIENTS, B_CLIENTS = 200, 10
FREE_POOL, PREMIUM_POOL = 8, 10
A_APP, B_APP = "free_a", "premium_b"
GOAL_TPS, GOAL_P99 = 0.8, 3.0


def tenant_settings(base: int) -> ProxySettings:
    return ProxySettings(pool_size=base, max_clients=1000, overrides={
        "tenant_quotas": {"enabled": True, "identifier": "application_name", "limits": [
            {"tenant_pattern": "free_*", "tier": "free"},
            {"tenant_pattern": "premium_*", "tier": "premium"}]},
        "tiers": {"free": {"mode": "shared", "pool_size": FREE_POOL, "weight": 1},
                  "premium": {"mode": "dedicated", "pool_size": PREMIUM_POOL, "weight": 4,
                              "expected_tenants": 2}},
    })


def _b_run(b: Bench, s: System, seconds: int, tag: str) -> tuple[dict, list]:
    prefix = str(b.raw / f"noisy-{s.name}-{tag}.txlog")
    r = pgbench(s.conninfo(application_name=B_APP), clients=B_CLIENTS, jobs=1, seconds=seconds,
                script=SCRIPT, extra=["-l", "--log-prefix", prefix], timeout=seconds + 60)
    (b.raw / f"noisy-{s.name}-{tag}.pgbench.txt").write_text(
        f"$ {' '.join(r.argv)}\nrc={r.rc}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}")
    samples = latency.read_timed_logs(prefix)
    lat = sorted(x for _, x in samples)
    out = {"tps": r.processed / seconds, "p99": latency.percentile(lat, 99),
           "p50": latency.percentile(lat, 50), "processed": r.processed, "ok": r.clean,
           "error": None if r.clean else r.describe()}
    return out, samples


def measure(b: Bench, s: System, rep: int) -> dict:
    d = b.plan.seconds // 2 or 3
    rec: dict = {"system": s.name, "rep": rep, "seconds": d}
    b.wait_quiet()
    alone, _ = _b_run(b, s, d, f"r{rep}-alone")
    a_prefix = str(b.raw / f"noisy-{s.name}-r{rep}-a.txlog")
    mon = noise.Monitor(b.roots).start()
    t0 = time.time()
    a_run = pgbench(s.conninfo(application_name=A_APP), clients=A_CLIENTS, jobs=2,
                    seconds=d + 6, script=SCRIPT, extra=["-l", "--log-prefix", a_prefix],
                    timeout=d + 120, background=True)
    time.sleep(3)
    busy, b_samples = _b_run(b, s, d, f"r{rep}-busy")
    a = a_run.result()
    mon.stop()
    (b.raw / f"noisy-{s.name}-r{rep}-a.pgbench.txt").write_text(
        f"$ {' '.join(a.argv)}\nrc={a.rc}\n--- stdout\n{a.stdout}\n--- stderr\n{a.stderr}")
    a_samples = latency.read_timed_logs(a_prefix)
    rec.update({
        "alone": alone, "busy": busy,
        "a": {"tps": a.processed / (d + 6), "processed": a.processed, "ok": a.clean,
              "error": None if a.clean else a.describe()},
        "tps_ratio": busy["tps"] / alone["tps"] if alone["tps"] else None,
        "p99_ratio": busy["p99"] / alone["p99"] if alone["p99"] else None,
        "over_time": {"a": latency.over_time(a_samples, t0), "b": latency.over_time(b_samples,
                                                                                     t0)},
        "other_avg_cores": mon.other_avg, "other_max_cores": mon.other_max,
        "noisy": mon.interfered(b.plan.interference_cores),
    })
    errs = [f"{k}: {v['error']}" for k, v in (("B alone", alone), ("B beside A", busy),
                                               ("A", rec["a"])) if v.get("error")]
    dead = b.ensure_alive(s)
    if dead:
        errs.append(dead)
    rec["errors"] = errs
    rec["ok"] = not errs
    b.log(f"  noisy_neighbour  {s.name:<10} rep {rep}: B alone {alone['tps']:.0f} tps p99 "
          f"{alone['p99']:.1f} ms; beside A {busy['tps']:.0f} tps p99 {busy['p99']:.1f} ms "
          f"({rec['tps_ratio'] or 0:.2f}x tps, {rec['p99_ratio'] or 0:.1f}x p99); "
          f"A {rec['a']['tps']:.0f} tps")
    for e in errs:
        b.error(f"noisy_neighbour {s.name} rep {rep}: {e}")
    return rec


def run_noisy(b: Bench) -> None:
    p = b.plan
    systems = [s for s in b.systems.values() if s.is_proxy and s.spec.runs("noisy_neighbour")]
    if not systems:
        return
    b.log(f"noisy_neighbour: tenant A {A_CLIENTS} clients on a shared pool of {FREE_POOL}, "
          f"tenant B {B_CLIENTS} clients on a dedicated pool of {PREMIUM_POOL}; {p.reps} reps")
    for s in systems:
        if s.spec.kind == "helios":
            s.start(tenant_settings(p.pool_size))
        else:
            s.start(ProxySettings(pool_size=FREE_POOL + PREMIUM_POOL, max_clients=1000))
    recs = []
    try:
        for rep in range(p.reps):
            k = rep % len(systems)
            for s in systems[k:] + systems[:k]:
                recs.append(measure(b, s, rep))
    finally:
        b.extra["noisy_neighbour"] = recs
        for s in systems:
            s.start(ProxySettings(pool_size=p.pool_size))
        b.save_json()
