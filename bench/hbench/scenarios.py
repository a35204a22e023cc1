"""The pgbench scenarios. Each runs plan.reps times with the systems alternating (the order
rotates every repetition), after one unmeasured warm-up per system."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

from . import latency
from .runner import Bench, PgbenchSpec, Pinning, run_pgbench, warmup
from .systems import System


@dataclass
class Scenario:
    name: str
    title: str
    spec: Callable[[Bench], PgbenchSpec]
    applies: Callable[[Bench, System], Optional[str]] = lambda b, s: None  # None or why not
    pinning: Callable[[Bench], Optional[Pinning]] = lambda b: None
    available: Callable[[Bench], Optional[str]] = lambda b: None  # None or why skipped
    main: bool = True  # part of --quick


def _no_direct_many(b: Bench, s: System) -> Optional[str]:
    if not s.is_proxy and b.plan.many_clients > b.plan.max_connections - 10:
        return (f"{b.plan.many_clients} clients exceed PostgreSQL's max_connections "
                f"{b.plan.max_connections}")
    return None


def _pin(b: Bench) -> Optional[Pinning]:
    return Pinning({0}, {1})


def _pinned_available(b: Bench) -> Optional[str]:
    if not b.plan.pinned:
        return "not in this plan (--quick)"
    if not {0, 1} <= os.sched_getaffinity(0):
        return "needs CPUs 0 and 1"
    return None


# A transaction that SETs a session parameter (a carried one) before its query, as apps that set
# a per-request timeout or search_path do: the proxy must carry the SET to the client's next
# backend and, in transaction mode, check the session state at the lease's end.
SET_PER_TXN = """\\set aid random(1, 100000 * :scale)
SET statement_timeout = '5s';
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
"""

SCENARIOS: list[Scenario] = [
    Scenario("select_simple", "pgbench -S, simple protocol, c16 (saturation)",
             lambda b: PgbenchSpec(b.plan.clients, b.plan.jobs,
                                   sampling_rate=b.plan.sampling_rate)),
    Scenario("select_extended", "pgbench -S -M extended, c16 (saturation)",
             lambda b: PgbenchSpec(b.plan.clients, b.plan.jobs, protocol="extended",
                                   sampling_rate=b.plan.sampling_rate)),
    Scenario("rate_10k", "pgbench -S -R 10000, c16 (fixed offered load)",
             lambda b: PgbenchSpec(b.plan.clients, b.plan.jobs, rate=b.plan.rate)),
    Scenario("connect_storm", "pgbench -S -C, c16 (a new login per transaction; "
             "1-iteration SCRAM role)",
             lambda b: PgbenchSpec(b.plan.clients, b.plan.jobs, connect_each=True)),
    Scenario("c1000", "pgbench -S, c1000 through 20 backends",
             lambda b: PgbenchSpec(b.plan.many_clients, b.plan.jobs,
                                   sampling_rate=b.plan.sampling_rate),
             applies=_no_direct_many),
    Scenario("pinned", "pgbench -S c16, database + pgbench on CPU0, proxy on CPU1",
             lambda b: PgbenchSpec(b.plan.clients, b.plan.jobs,
                                   sampling_rate=b.plan.sampling_rate),
             pinning=_pin, available=_pinned_available, main=False),
    Scenario("set_per_txn", "a session SET then pgbench -S's query per transaction, c16",
             lambda b: PgbenchSpec(b.plan.clients, b.plan.jobs, script=SET_PER_TXN,
                                   sampling_rate=b.plan.sampling_rate), main=False),
]

def rotation(systems: list[System], rep: int) -> list[System]:
    k = rep % len(systems)
    return systems[k:] + systems[:k]


def run_scenario(b: Bench, sc: Scenario) -> None:
    why = sc.available(b)
    if why:
        b.extra.setdefault("skipped", {})[sc.name] = why
        b.log(f"{sc.name}: skipped ({why})")
        return
    spec = sc.spec(b)
    pin = sc.pinning(b)
    systems = []
    for s in b.systems.values():
        if not s.spec.runs(sc.name):
            continue
        why = sc.applies(b, s)
        if why:
            b.extra.setdefault("not_applicable", {}).setdefault(sc.name, {})[s.name] = why
        else:
            systems.append(s)
    b.log(f"{sc.name}: {sc.title}; {b.plan.reps} x {b.plan.seconds}s, systems "
          + ", ".join(s.name for s in systems))
    latencies: dict[str, list[list[float]]] = {}
    for rep in range(b.plan.reps):
        for s in rotation(systems, rep):
            if rep == 0:
                warmup(b, sc.name, s, spec, pin)
            rec = run_pgbench(b, sc.name, s, spec, rep, pin)
            lat = rec.pop("_latencies", None)
            if lat:
                latencies.setdefault(s.name, []).append(lat)
            b.runs.append(rec)
    cdf = {}
    for name, runs in latencies.items():
        merged = latency.merge(runs)
        cdf[name] = {"points": latency.cdf_points(merged), "summary": latency.summary(merged)}
    if cdf:
        b.extra.setdefault("cdf", {})[sc.name] = cdf
    b.save_json()
