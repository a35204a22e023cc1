#!/usr/bin/python3
"""Kernel data path benchmarks (issue 6). Run as root from the repository root:

    sudo HELIOS_BUILD_DIR=build-kernel bench/kernel/kernel_bench.py bypass [--rounds 3] [--seconds 10]
    sudo HELIOS_BUILD_DIR=build-kernel bench/kernel/kernel_bench.py relay  [--rounds 3]
    sudo HELIOS_BUILD_DIR=build-kernel bench/kernel/kernel_bench.py splice-pg [--rounds 3]
    ... [--json out.json] [--quick]

bypass     pgbench -S -c16 against PostgreSQL directly, through heliosproxy (user-space path),
           and the same two with the same-host bypass attached (kernel_tool bypass: the exact
           SameHostBypass the proxy would attach), both hops local.
relay      kernel_tool relay: a PostgreSQL-framed request/response relay with no database,
           kernel splice (SpliceEngine) vs a user-space copy relay, small / 10 MB / 1 GiB answers.
splice-pg  kernel_tool pgrelay: a session-mode relay in front of a real PostgreSQL that does
           startup/auth in user space then either splices the pair in the kernel or keeps copying
           in user space: pgbench -S -c16, a 10 MB SELECT, COPY out of 1 GB.

Each configuration runs once per round, rounds interleave the configurations, and the report
gives median (min-max) over rounds plus the machine load seen (1-minute loadavg before each
run): this machine has 2 CPUs shared with other work, so only ratios inside one run mean much.
CPU per transaction / per round trip is whole-machine busy time from /proc/stat (user, system,
irq, softirq, steal: kworker and softirq time included) divided by the work done.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from harness import BENCH_USER, ROLES, ConnInfo, PgCluster, pgbench  # noqa: E402
from harness.proxy import HeliosProxy, default_config, deep_merge  # noqa: E402
from harness.util import free_port  # noqa: E402
from hbench.procfs import machine_cpu  # noqa: E402

BUILD = Path(os.environ.get("HELIOS_BUILD_DIR", "build"))
if not BUILD.is_absolute():
    BUILD = ROOT / BUILD
TOOL = BUILD / "bench-kernel" / "kernel_tool"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_tool() -> Path:
    """Compiles bench/kernel/kernel_tool.cpp against the build directory's libhelios_core.a."""
    src = ROOT / "bench/kernel/kernel_tool.cpp"
    lib = BUILD / "libhelios_core.a"
    if not lib.exists():
        sys.exit(f"{lib} missing: build helios_core in {BUILD} first")
    TOOL.parent.mkdir(parents=True, exist_ok=True)
    if TOOL.exists() and TOOL.stat().st_mtime > max(src.stat().st_mtime, lib.stat().st_mtime):
        return TOOL
    cmd = ["g++", "-std=c++20", "-O2", "-DSPDLOG_COMPILED_LIB", "-DSPDLOG_FMT_EXTERNAL",
           "-DSPDLOG_SHARED_LIB", "-DFMT_SHARED", f"-I{ROOT}/userspace", f"-I{ROOT}/include",
           f"-I{BUILD}/generated", str(src), str(lib), "-lbpf", "-lxdp", "-luring", "-lspdlog",
           "-lfmt", "-lpthread", "-o", str(TOOL)]
    log("building " + str(TOOL))
    subprocess.run(cmd, check=True)
    return TOOL


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def fmt(s: dict, digits: int = 0) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


# ---- bypass -----------------------------------------------------------------------------------

class Bypass:
    """kernel_tool bypass as a context manager: attached while inside."""

    def __init__(self, endpoints: list[str], instance: str):
        self.argv = [str(TOOL), "bypass", "--instance", instance]
        for e in endpoints:
            self.argv += ["--endpoint", e]
        self.stats: dict = {}

    def __enter__(self) -> "Bypass":
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        line = json.loads(self.proc.stdout.readline())
        if line.get("event") != "attached":
            self.proc.kill()
            raise RuntimeError(f"bypass did not attach: {line}")
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(timeout=10)
        for ln in out.splitlines():
            d = json.loads(ln)
            if d.get("event") == "detached":
                self.stats = d.get("stats", {})


def run_pgbench(ci: ConnInfo, seconds: int, clients: int = 16, **kw) -> dict:
    load = loadavg()
    c0 = machine_cpu()
    r = pgbench(ci, clients=clients, jobs=2, seconds=seconds, select_only=True, **kw)
    c1 = machine_cpu()
    if not r.clean:
        raise RuntimeError(r.describe())
    busy = (c1 - c0).busy
    return {"tps": r.tps, "processed": r.processed, "latency_ms": r.latency_avg_ms,
            "busy_cpu_s": busy, "cpu_us_per_txn": busy * 1e6 / max(r.processed, 1),
            "load": load}


def start_helios(cluster: PgCluster, lp: int = 0) -> HeliosProxy:
    used = {cluster.port}
    lp = lp or free_port(avoid=used)
    ap = free_port(avoid=used | {lp})
    mp = free_port(avoid=used | {lp, ap})
    cfg = deep_merge(default_config(cluster, listen_port=lp, admin_port=ap, metrics_port=mp),
                     {"proxy": {"workers": 0, "log_level": "error"},
                      "backend": {"max_connections": 20}})
    p = HeliosProxy(cluster, cfg)
    p.start(30.0)
    return p


def bench_bypass(args) -> dict:
    """Every configuration starts from fresh connections: a connection is bypassed only if it
    was established while the bypass was attached (and stays bypassed until it closes), so the
    proxy is restarted (empty pool) before each proxy run, under the bypass when it applies."""
    results: dict[str, list[dict]] = {}
    with PgCluster(max_connections=100) as pg:
        pg.pgbench_init("bench", scale=1)
        direct = ConnInfo(pg.host, pg.port, BENCH_USER, ROLES[BENCH_USER].password, "bench",
                          {"connect_timeout": 10})
        db_ep = f"{pg.host}:{pg.port}=db"
        proxy = None

        def fresh_proxy() -> ConnInfo:
            nonlocal proxy
            if proxy is not None:
                proxy.stop()
                proxy.cleanup()
            proxy = start_helios(pg)
            ci = proxy.conninfo(BENCH_USER, "bench")
            run_pgbench(ci, 2)  # warm: fill the pool
            return ci

        def one(name: str) -> dict:
            if name == "direct":
                return run_pgbench(direct, args.seconds)
            if name == "direct+bypass":
                with Bypass([db_ep], f"bench-{os.getpid()}") as b:
                    r = run_pgbench(direct, args.seconds)
                r["bypass"] = b.stats
                return r
            if name == "proxy":
                return run_pgbench(fresh_proxy(), args.seconds)
            # proxy+bypass: the listen port is only known once the proxy runs; the bypass
            # matches the listen port (app->proxy hop) and the database (proxy->db hop).
            nonlocal proxy
            if proxy is not None:
                proxy.stop()
                proxy.cleanup()
                proxy = None
            lp = free_port(avoid={pg.port})
            with Bypass([f"127.0.0.1:{lp}=proxy", db_ep], f"bench-{os.getpid()}") as b:
                p = start_helios(pg, lp)
                try:
                    ci = p.conninfo(BENCH_USER, "bench")
                    if ci.port != lp:
                        raise RuntimeError("the proxy moved to another port")
                    run_pgbench(ci, 2)
                    r = run_pgbench(ci, args.seconds)
                finally:
                    p.stop()
                    p.cleanup()
            r["bypass"] = b.stats
            return r

        names = ["direct", "direct+bypass", "proxy", "proxy+bypass"]
        try:
            for rnd in range(args.rounds):
                for name in names:
                    r = one(name)
                    log(f"round {rnd + 1} {name:14s} tps {r['tps']:8.0f}  cpu/txn "
                        f"{r['cpu_us_per_txn']:6.1f} us  load {r['load']:.1f}"
                        + (f"  redirected {r['bypass'].get('msgs_redirected', 0)} msgs, "
                           f"{r['bypass'].get('added', 0)} sockets" if 'bypass' in r else ""))
                    results.setdefault(name, []).append(r)
        finally:
            if proxy is not None:
                proxy.stop()
                proxy.cleanup()
    out = {}
    for name, runs in results.items():
        out[name] = {"tps": summary([r["tps"] for r in runs]),
                     "cpu_us_per_txn": summary([r["cpu_us_per_txn"] for r in runs]),
                     "load": summary([r["load"] for r in runs]), "runs": runs}

    def ratio(a: str, b: str) -> dict:  # per round (closest conditions), then the median
        return summary([x["tps"] / y["tps"] for x, y in zip(results[a], results[b])])
    out["ratios"] = {"proxy+bypass / direct": ratio("proxy+bypass", "direct"),
                     "proxy+bypass / proxy": ratio("proxy+bypass", "proxy"),
                     "direct+bypass / direct": ratio("direct+bypass", "direct"),
                     "proxy / direct": ratio("proxy", "direct")}
    print_table("pgbench -S -c16 -j2, both hops on this host", out, "tps")
    return out


def print_table(title: str, out: dict, key: str) -> None:
    print(f"\n{title}")
    for name, v in out.items():
        if name == "ratios":
            continue
        print(f"  {name:16s} {key} {fmt(v[key])}   cpu/txn us {fmt(v['cpu_us_per_txn'], 1)}"
              f"   load {fmt(v['load'], 1)}")
    for k, v in out.get("ratios", {}).items():
        print(f"  {k:28s} {fmt(v, 2)}")


# ---- relay microbench ---------------------------------------------------------------------------

def bench_relay(args) -> dict:
    sizes = [("small 100 B", 100, 20000 if not args.quick else 2000, 4),
             ("10 MB", 10_000_000, 100 if not args.quick else 10, 1),
             ("1 GiB", 1 << 30, 2 if not args.quick else 1, 1)]
    results: dict = {}
    for rnd in range(args.rounds):
        for label, size, count, pairs in sizes:
            for path in ("user", "splice"):
                load = loadavg()
                cp = subprocess.run([str(TOOL), "relay", "--path", path, "--size", str(size),
                                     "--count", str(count), "--pairs", str(pairs),
                                     "--sndbuf", str(args.sndbuf)],
                                    capture_output=True, text=True, timeout=600)
                if cp.returncode != 0:
                    raise RuntimeError(cp.stdout + cp.stderr)
                d = json.loads(cp.stdout.strip().splitlines()[-1])
                d["load"] = load
                results.setdefault(label, {}).setdefault(path, []).append(d)
                log(f"round {rnd + 1} {label:12s} {path:6s} {d['round_trips_per_s']:9.1f} rt/s "
                    f"{d['mb_per_s']:8.1f} MB/s cpu/rt {d['cpu_us_per_round_trip']:9.1f} us "
                    f"load {load:.1f}")
    out = {}
    print(f"\nrelay microbench (kernel_tool relay, sndbuf {args.sndbuf or 'auto'})")
    for label, by_path in results.items():
        o = {}
        for path, runs in by_path.items():
            o[path] = {"round_trips_per_s": summary([r["round_trips_per_s"] for r in runs]),
                       "mb_per_s": summary([r["mb_per_s"] for r in runs]),
                       "cpu_us_per_round_trip": summary([r["cpu_us_per_round_trip"] for r in runs]),
                       "load": summary([r["load"] for r in runs]), "runs": runs}
        o["splice/user"] = summary([s["round_trips_per_s"] / u["round_trips_per_s"]
                                    for s, u in zip(by_path["splice"], by_path["user"])])
        out[label] = o
        for path in ("user", "splice"):
            v = o[path]
            print(f"  {label:12s} {path:6s} rt/s {fmt(v['round_trips_per_s'], 1)}  MB/s "
                  f"{fmt(v['mb_per_s'])}  cpu/rt us {fmt(v['cpu_us_per_round_trip'], 1)}  load "
                  f"{fmt(v['load'], 1)}")
        print(f"  {label:12s} splice/user throughput {fmt(o['splice/user'], 2)}")
    return out


# ---- relay in front of PostgreSQL ----------------------------------------------------------------

class PgRelay:
    """kernel_tool pgrelay: session relay in front of PostgreSQL, spliced or copied."""

    def __init__(self, pg: PgCluster, path: str, sndbuf: int):
        self.port = free_port(avoid={pg.port})
        self.argv = [str(TOOL), "pgrelay", "--path", path, "--listen", str(self.port),
                     "--upstream", f"{pg.host}:{pg.port}", "--sndbuf", str(sndbuf)]

    def __enter__(self) -> "PgRelay":
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        line = json.loads(self.proc.stdout.readline())
        if line.get("event") != "listening":
            self.proc.kill()
            raise RuntimeError(f"pgrelay did not start: {line}")
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(timeout=10)
        self.final = [json.loads(x) for x in out.splitlines() if x.strip()]


def timed_psql(ci: ConnInfo, sql: str) -> dict:
    """psql in one session, each ';'-separated statement as its own -c, output discarded."""
    load = loadavg()
    env = dict(os.environ, PGPASSWORD=ci.password)
    argv = ["/usr/lib/postgresql/15/bin/psql", "-X", "-q", "-A", "-t", "-o", "/dev/null",
            "-h", ci.host, "-p", str(ci.port), "-U", ci.user, "-d", ci.dbname]
    for stmt in sql.split(";"):
        if stmt.strip():
            argv += ["-c", stmt.strip()]
    c0 = machine_cpu()
    t0 = time.monotonic()
    with open(os.devnull, "wb") as devnull:
        cp = subprocess.run(argv, env=env, stdout=devnull, stderr=subprocess.PIPE, timeout=600)
    t = time.monotonic() - t0
    busy = (machine_cpu() - c0).busy
    if cp.returncode != 0:
        raise RuntimeError(cp.stderr.decode())
    return {"seconds": t, "busy_cpu_s": busy, "load": load}


def bench_splice_pg(args) -> dict:
    tests = [("pgbench -S -c16", "pgbench"),
             ("10 MB SELECT x5", ";".join(["SELECT repeat('x', 10*1024*1024)"] * 5)),
             ("COPY out 1 GB", "COPY (SELECT repeat('x', 1000) FROM generate_series(1, 1000000))"
                               " TO STDOUT")]
    if args.quick:
        tests[2] = ("COPY out 100 MB", "COPY (SELECT repeat('x', 1000) FROM "
                                       "generate_series(1, 100000)) TO STDOUT")
    results: dict = {}
    with PgCluster(max_connections=100) as pg:
        pg.pgbench_init("bench", scale=1)
        direct = ConnInfo(pg.host, pg.port, BENCH_USER, ROLES[BENCH_USER].password, "bench",
                          {"connect_timeout": 10})
        for rnd in range(args.rounds):
            for label, what in tests:
                for path in ("direct", "user", "splice"):
                    if path == "direct":
                        r = (run_pgbench(direct, args.seconds) if what == "pgbench"
                             else timed_psql(direct, what))
                        extra = {}
                    else:
                        with PgRelay(pg, path, args.sndbuf) as relay:
                            ci = ConnInfo("127.0.0.1", relay.port, BENCH_USER,
                                          ROLES[BENCH_USER].password, "bench",
                                          {"connect_timeout": 10})
                            r = (run_pgbench(ci, args.seconds) if what == "pgbench"
                                 else timed_psql(ci, what))
                        extra = relay.final[-1] if relay.final else {}
                    r["relay"] = extra
                    results.setdefault(label, {}).setdefault(path, []).append(r)
                    metric = (f"tps {r['tps']:8.0f} cpu/txn {r['cpu_us_per_txn']:6.1f} us"
                              if what == "pgbench" else
                              f"{r['seconds']:7.2f} s cpu {r['busy_cpu_s']:6.2f} s")
                    log(f"round {rnd + 1} {label:16s} {path:6s} {metric} load {r['load']:.1f}")
    out = {}
    print("\nsession relay in front of PostgreSQL: direct, user-space copy, kernel splice")
    for label, by_path in results.items():
        o = {}
        for path, runs in by_path.items():
            if "tps" in runs[0]:
                o[path] = {"tps": summary([x["tps"] for x in runs]),
                           "cpu_us_per_txn": summary([x["cpu_us_per_txn"] for x in runs])}
            else:
                o[path] = {"seconds": summary([x["seconds"] for x in runs]),
                           "busy_cpu_s": summary([x["busy_cpu_s"] for x in runs])}
            o[path]["load"] = summary([x["load"] for x in runs])
            o[path]["runs"] = runs
        key = "tps" if "tps" in by_path["user"][0] else "seconds"
        if key == "tps":
            o["splice/user"] = summary([s["tps"] / u["tps"] for s, u in
                                        zip(by_path["splice"], by_path["user"])])
        else:  # speed-up = user time / splice time
            o["splice/user"] = summary([u["seconds"] / s["seconds"] for s, u in
                                        zip(by_path["splice"], by_path["user"])])
        out[label] = o
        for path in ("direct", "user", "splice"):
            v = o[path]
            if key == "tps":
                print(f"  {label:16s} {path:6s} tps {fmt(v['tps'])}  cpu/txn us "
                      f"{fmt(v['cpu_us_per_txn'], 1)}  load {fmt(v['load'], 1)}")
            else:
                print(f"  {label:16s} {path:6s} s {fmt(v['seconds'], 2)}  busy cpu s "
                      f"{fmt(v['busy_cpu_s'], 2)}  load {fmt(v['load'], 1)}")
        print(f"  {label:16s} splice vs user (speed) {fmt(o['splice/user'], 2)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", choices=["bypass", "relay", "splice-pg", "all"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--sndbuf", type=int, default=4 * 1024 * 1024,
                    help="SO_SNDBUF of spliced/relayed sockets (0 = autotuned)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, short")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 3
    if os.geteuid() != 0:
        sys.exit("run as root (BPF, cgroups)")
    build_tool()
    out = {"machine": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                       "loadavg_start": Path("/proc/loadavg").read_text().split()[:3]},
           "args": vars(args)}
    if args.what in ("bypass", "all"):
        out["bypass"] = bench_bypass(args)
    if args.what in ("relay", "all"):
        out["relay"] = bench_relay(args)
    if args.what in ("splice-pg", "all"):
        out["splice_pg"] = bench_splice_pg(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
