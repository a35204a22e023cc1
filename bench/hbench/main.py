"""bench/run: heliosproxy against PostgreSQL directly and PgBouncer 1.18, in one run.

  bench/run                 the full benchmark (3 runs per scenario and system, 100k idle
                            clients, pinned CPUs); writes bench/results/<date>/ and updates
                            docs/benchmarks.md
  bench/run --quick         one run of the main scenarios, < 3 minutes (CI smoke test: fails
                            only if a run errors, never on speed); bench/results/<date>-quick/
  bench/run --report DIR    re-render DIR/summary.md and plots from DIR/results.json

Exit status: 0 when every run completed without error, 1 when a run errored (details in
summary.md and bench.log), 2 when the bench could not start (missing binary, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from harness import DataPathUnavailable, PgCluster, helios_binary

from . import docs, idle, machine, noisy, plots, report, scenarios
from .plan import full_plan, quick_plan
from .runner import Bench
from .systems import FULL_SYSTEMS, PG_LISTEN, QUICK_SYSTEMS, SPECS, ProxySettings, System

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
ALL_SCENARIOS = [s.name for s in scenarios.SCENARIOS] + ["idle", "idle_huge",
                                                          "noisy_neighbour"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--quick", action="store_true", help="one short run of the main scenarios")
    p.add_argument("--systems",
                   help="comma list of " + ", ".join(SPECS) + f" (default: {FULL_SYSTEMS}; "
                   f"with --quick {QUICK_SYSTEMS})")
    p.add_argument("--scenarios", default="",
                   help="comma list of " + ", ".join(ALL_SCENARIOS) + " (default: all of the "
                   "plan)")
    p.add_argument("--reps", type=int, help="runs per scenario and system")
    p.add_argument("--seconds", type=int, help="pgbench -T per run")
    p.add_argument("--idle-clients", type=int, help="idle clients per proxy (default 10000)")
    p.add_argument("--huge-clients", type=int, help="the 100k scenario's clients (0 = skip)")
    p.add_argument("--max-quiet-wait", type=float,
                   help="seconds to wait for a quiet machine before each run")
    p.add_argument("--retries", type=int, help="repeats of a run that saw other load")
    p.add_argument("--out", help="results dir (default bench/results/<date>[-quick])")
    p.add_argument("--docs", dest="docs", action="store_true", default=None,
                   help="update docs/benchmarks.md (default: on for full runs)")
    p.add_argument("--no-docs", dest="docs", action="store_false")
    p.add_argument("--report", metavar="DIR", help="re-render DIR from its results.json")
    return p.parse_args(argv)


def make_plan(a):
    plan = quick_plan() if a.quick else full_plan()
    for attr, val in (("reps", a.reps), ("seconds", a.seconds), ("idle_clients", a.idle_clients),
                      ("huge_idle_clients", a.huge_clients),
                      ("max_quiet_wait_s", a.max_quiet_wait), ("retries", a.retries)):
        if val is not None:
            setattr(plan, attr, val)
    plan.scenarios = [s for s in a.scenarios.split(",") if s]
    bad = [s for s in plan.scenarios if s not in ALL_SCENARIOS]
    if bad:
        raise SystemExit(f"bench/run: unknown scenario(s) {bad}; known: {ALL_SCENARIOS}")
    return plan


def preflight(system_names: list[str]) -> list[str]:
    problems = []
    for n in system_names:
        if n not in SPECS:
            problems.append(f"unknown system {n!r} (known: {', '.join(SPECS)})")
    if any(SPECS[n].kind == "helios" for n in system_names if n in SPECS) \
            and not helios_binary().exists():
        problems.append(f"{helios_binary()} not found: build it (scripts/setup) or set "
                        "HELIOS_BUILD_DIR")
    if "pgbouncer" in system_names and not (shutil.which("pgbouncer")
                                            or Path("/usr/sbin/pgbouncer").exists()):
        problems.append("pgbouncer not found (apt-get install pgbouncer; scripts/setup does)")
    if shutil.which("gnuplot") is None:
        problems.append("gnuplot not found (apt-get install gnuplot-nox; scripts/setup does)")
    if os.geteuid() != 0:
        problems.append("run as root: PostgreSQL and PgBouncer run as the postgres user, and "
                        "100k clients need raised file-descriptor limits")
    return problems


def render(out: Path, data: dict, b: Bench | None = None) -> str:
    try:
        data["extra"]["plots"] = plots.make_plots(out, data)
    except plots.PlotError as e:
        data["extra"]["plots"] = []
        data.setdefault("errors", []).append(f"plots: {e}")
        if b is not None:
            b.error(f"plots: {e}")
    summary = report.render_summary(data)
    (out / "summary.md").write_text(summary)
    return summary


def self_test(b: Bench) -> None:
    """The bench's own unit tests (bench/tests), so the CI smoke run covers them too."""
    import subprocess

    cp = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         str(REPO / "bench" / "tests")], capture_output=True, text=True,
                        timeout=300, env=dict(os.environ))
    last = (cp.stdout.strip().splitlines() or ["?"])[-1]
    b.log(f"bench/tests: {last}")
    if cp.returncode != 0:
        b.error(f"bench/tests failed:\n{cp.stdout[-3000:]}{cp.stderr[-1000:]}")


def wanted(plan, name: str) -> bool:
    return not plan.scenarios or name in plan.scenarios


def run_bench(a) -> int:
    plan = make_plan(a)
    names = [s for s in (a.systems or (QUICK_SYSTEMS if a.quick else FULL_SYSTEMS)).split(",")
             if s]
    problems = preflight(names)
    if problems:
        for pr in problems:
            print(f"bench/run: {pr}", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y-%m-%d_%H%M%S")
    out = Path(a.out) if a.out else RESULTS / (stamp + ("-quick" if a.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    with PgCluster(max_connections=plan.max_connections, shared_buffers=plan.shared_buffers,
                   settings={"listen_addresses": PG_LISTEN}) as pg:
        systems = {n: System(SPECS[n], pg) for n in names}
        b = Bench(plan, pg, systems, out)
        b.extra["stamp"] = stamp
        b.extra["systems"] = {n: s.label for n, s in systems.items()}
        b.log(f"bench/run {plan.name}: results in {out}")
        try:
            if a.quick:
                self_test(b)
            b.log(f"PostgreSQL on port {pg.port}; pgbench -i -s {plan.scale}")
            pg.pgbench_init("bench", scale=plan.scale)
            for n, s in list(systems.items()):
                try:
                    s.start(ProxySettings(pool_size=plan.pool_size))
                except DataPathUnavailable as e:
                    b.extra.setdefault("skipped", {})[n] = str(e)
                    b.log(f"{n}: skipped ({e})")
                    del systems[n]
            b.extra["machine"] = machine.machine_info(systems.values())
            for sc in scenarios.SCENARIOS:
                if wanted(plan, sc.name) and (sc.main or not a.quick):
                    scenarios.run_scenario(b, sc)
            if wanted(plan, "idle"):
                idle.run_idle(b)
            if wanted(plan, "idle_huge"):
                idle.run_huge(b)
            if wanted(plan, "noisy_neighbour"):
                if a.quick:
                    b.extra.setdefault("skipped", {})["noisy_neighbour"] = \
                        "not in this plan (--quick)"
                else:
                    noisy.run_noisy(b)
        except Exception as e:  # noqa: BLE001 - recorded; the report still gets written
            b.error(f"bench aborted: {e}\n{traceback.format_exc()}")
        finally:
            for s in systems.values():
                if s.is_proxy and s.proxy is not None:
                    tail = s.stderr_tail(30)
                    try:
                        rc = s.stop()
                    except Exception as e:  # noqa: BLE001
                        rc = f"stop failed: {e}"
                    if rc != 0:
                        b.error(f"{s.label} exited with {rc} on shutdown; stderr tail:\n{tail}")
    b.extra["elapsed_s"] = round(time.monotonic() - t_start, 1)
    b.save_json()
    data = json.loads((out / "results.json").read_text())
    render(out, data, b)
    (out / "results.json").write_text(json.dumps(data, indent=1, default=str))
    update = a.docs if a.docs is not None else not a.quick
    if update:
        docs.update_docs(REPO / "docs" / "benchmarks.md", (out / "summary.md").read_text(), out)
        b.log("docs/benchmarks.md updated")
    b.log(f"done in {b.extra['elapsed_s']:.0f}s: {out / 'summary.md'}"
          + (f"; {len(data['errors'])} error(s)" if data["errors"] else "; no errors"))
    return 1 if data["errors"] else 0


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.report:
        out = Path(a.report)
        data = json.loads((out / "results.json").read_text())
        print(render(out, data))
        return 0
    return run_bench(a)


if __name__ == "__main__":
    sys.exit(main())
