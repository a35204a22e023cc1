#!/usr/bin/python3
"""Kernel data path benchmarks (issue 6). Run as root from the repository root:

    sudo HELIOS_BUILD_DIR=build-kernel bench/kernel/kernel_bench.py bypass [--rounds 3] [--seconds 10]
    sudo HELIOS_BUILD_DIR=build-kernel bench/kernel/kernel_bench.py relay  [--rounds 3]
    sudo HELIOS_BUILD_DIR=build-kernel bench/kernel/kernel_bench.py splice-pg [--rounds 3]
    sudo HELIOS_BUILD_DIR=build bench/kernel/kernel_bench.py skmsg-reply [--rounds 3] [--seconds 8]
    sudo HELIOS_BUILD_DIR=build bench/kernel/kernel_bench.py proxy [--rounds 3] [--seconds 8]
    ... [--json out.json] [--quick]

bypass     pgbench -S -c16 against PostgreSQL directly, through heliosproxy (user-space path),
           and the same two with the same-host bypass attached (kernel_tool bypass: the exact
           SameHostBypass the proxy would attach), both hops local.
relay      kernel_tool relay: a PostgreSQL-framed request/response relay with no database,
           kernel splice (SpliceEngine) vs a user-space copy relay, small / 10 MB / 1 GiB answers.
splice-pg  kernel_tool pgrelay: a session-mode relay in front of a real PostgreSQL that does
           startup/auth in user space then either splices the pair in the kernel or keeps copying
           in user space: pgbench -S -c16, a 10 MB SELECT, COPY out of 1 GB.
skmsg-reply  kernel_tool pgrelay --path skmsg (issue 18 item 3): the same session relay, but
           PostgreSQL's own sendmsg redirects the replies to the client socket's egress (sk_msg on
           PostgreSQL's socket, bpf/skmsg_reply.bpf.c) until the ReadyForQuery 'I'; against the
           user-space copy relay and direct: pgbench -S -c16, 5 x SELECT of 10k rows of 1 KB,
           COPY out of 1 GB (100 MB with --quick). First checks the bytes (sha256 of psql's
           output through each path equals direct's). All CPU, PostgreSQL's included.
proxy      heliosproxy itself, data_path userspace vs kernel (the worker keeps the client
           direction, the kernel splices the replies), against PostgreSQL directly and PgBouncer
           1.18 (bench/run's systems, pool 20; each run from a freshly started proxy):
           pgbench -S -c16 (transaction mode), pgbench -S -R 10000 (latency avg and p99),
           5 x 10 MB SELECT in one psql session and COPY out of 1 GB (session mode). For
           heliosproxy it also records how many reply bytes each path relayed during the run
           (helios_proxy_bytes_total{direction="server_to_client"}): the kernel configuration's
           must be the kernel's. Tables in markdown, with per-round ratios.

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
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from harness import BENCH_USER, ROLES, ConnInfo, PgCluster, pgbench  # noqa: E402
from harness.proxy import HeliosProxy, default_config, deep_merge  # noqa: E402
from harness.util import free_port  # noqa: E402
from hbench import latency  # noqa: E402
from hbench.procfs import descendants, machine_cpu, ppid_map, proc_cpu, tree_cpu  # noqa: E402
from hbench.scenarios import rotation  # noqa: E402
from hbench.systems import SPECS, ProxySettings, System  # noqa: E402

sys.path.insert(0, str(ROOT / "bench" / "kernel"))
from kernel_tool import Bypass, PgRelay as _PgRelay, build_tool  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def fmt(s: dict, digits: int = 0) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


# ---- bypass -----------------------------------------------------------------------------------

PG: Optional[PgCluster] = None  # the cluster of the running scenario (its CPU is subtracted)


def postmaster_pid(pg: PgCluster) -> Optional[int]:
    try:
        return int((Path(pg.datadir) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _all_cpu() -> dict[int, tuple[float, int]]:
    """pid -> (own CPU seconds, ppid) for every process now."""
    out = {}
    for pid, ppid in ppid_map().items():
        c = proc_cpu(pid)
        if c is not None:
            out[pid] = (c.own, ppid)  # own time only: a reaped child was counted while alive
    return out


def irq_softirq_seconds() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[5] + v[6]) / os.sysconf("SC_CLK_TCK")


PATH_PIDS: list[int] = []  # the proxy / relay processes of the running configuration


class CpuMeter:
    """CPU during a run, two ways (both include kworker and softirq time):
      path_cpu_s       whole-machine busy (/proc/stat) minus the database's and the load
                       generator's (pgbench/psql: reaped children of this process). What the
                       issue asks for; it also contains whatever else ran on the machine.
      path_ours_cpu_s  the proxy/relay processes + every kernel thread (kworker, ksoftirqd) +
                       irq and softirq time (/proc/stat): the path's cost without other users'
                       processes (tick-based accounting here: softirq ticks are not in any task).
    others_cpu_s estimates the rest (processes alive at both ends, not ours)."""

    def __init__(self, pg: Optional[PgCluster]):
        self.pg = pg

    def __enter__(self) -> "CpuMeter":
        self.load = loadavg()
        self.pm = postmaster_pid(self.pg) if self.pg else None
        self.busy0 = machine_cpu()
        self.irq0 = irq_softirq_seconds()
        self.pg0 = tree_cpu([self.pm]) if self.pm else 0.0
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.kids0 = ru.ru_utime + ru.ru_stime
        self.snap0 = _all_cpu()
        return self

    def __exit__(self, *exc) -> None:
        snap1 = _all_cpu()
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.clients = ru.ru_utime + ru.ru_stime - self.kids0
        self.pg_cpu = (tree_cpu([self.pm]) if self.pm else 0.0) - self.pg0
        self.busy = (machine_cpu() - self.busy0).busy
        irq = irq_softirq_seconds() - self.irq0
        parents = {pid: pp for pid, (_, pp) in snap1.items()}
        pg_tree = descendants([self.pm], parents) if self.pm else set()
        path_tree = descendants(PATH_PIDS, parents) if PATH_PIDS else set()
        others = kthreads = path = 0.0
        for pid, (cpu1, ppid) in snap1.items():
            d = max(0.0, cpu1 - self.snap0[pid][0]) if pid in self.snap0 else 0.0
            if pid in path_tree:
                path += d
            elif pid == 2 or ppid == 2:
                kthreads += d
            elif pid in pg_tree or pid == os.getpid():
                continue
            else:
                others += d
        self.others = others
        self.path = self.busy - self.pg_cpu - self.clients
        self.path_ours = path + kthreads + irq
        self.relay, self.kthreads, self.irq = path, kthreads, irq

    def fields(self, units: int, unit_name: str) -> dict:
        n = max(units, 1)
        return {"busy_cpu_s": self.busy, "pg_cpu_s": self.pg_cpu, "client_cpu_s": self.clients,
                "others_cpu_s": self.others, "path_cpu_s": self.path,
                "path_ours_cpu_s": self.path_ours,
                f"cpu_us_per_{unit_name}": self.path * 1e6 / n,
                f"ours_cpu_us_per_{unit_name}": self.path_ours * 1e6 / n,
                "relay_cpu_s": self.relay, "kthread_cpu_s": self.kthreads,
                "irq_cpu_s": self.irq, "load": self.load}


def warm(ci: ConnInfo, clients: int = 16) -> None:
    """Connects every client and fills the proxy's pool (a fixed amount of work, not a time:
    under load the connects alone can take seconds)."""
    r = pgbench(ci, clients=clients, jobs=2, transactions=50, select_only=True)
    if not r.clean:
        raise RuntimeError(r.describe())


def run_pgbench(ci: ConnInfo, seconds: int, clients: int = 16, **kw) -> dict:
    for attempt in range(3):
        with CpuMeter(PG) as m:
            r = pgbench(ci, clients=clients, jobs=2, seconds=seconds, select_only=True, **kw)
        # Under heavy outside load the 16 connects alone can eat the whole -T: run again.
        if r.rc == 0 and r.processed == 0 and not r.errors and attempt < 2:
            log(f"  pgbench processed nothing in {seconds}s (attempt {attempt + 1}); again")
            continue
        break
    if not r.clean:
        raise RuntimeError(r.describe())
    out = {"tps": r.tps, "processed": r.processed, "latency_ms": r.latency_avg_ms}
    out.update(m.fields(r.processed, "txn"))
    return out


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
    global PG
    with PgCluster(max_connections=100) as pg:
        PG = pg
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
            PATH_PIDS[:] = [proxy.proc.pid]
            ci = proxy.conninfo(BENCH_USER, "bench")
            warm(ci)
            return ci

        def one(name: str) -> dict:
            PATH_PIDS[:] = []
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
                PATH_PIDS[:] = [p.proc.pid]
                try:
                    ci = p.conninfo(BENCH_USER, "bench")
                    if ci.port != lp:
                        raise RuntimeError("the proxy moved to another port")
                    warm(ci)
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
                     "ours_cpu_us_per_txn": summary([r["ours_cpu_us_per_txn"] for r in runs]),
                     "others_cpu_s": summary([r["others_cpu_s"] for r in runs]),
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
              f" (path processes+kthreads+softirq {fmt(v['ours_cpu_us_per_txn'], 1)})"
              f"   others cpu s {fmt(v['others_cpu_s'], 1)}   load {fmt(v['load'], 1)}")
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
                cp = subprocess.run([str(build_tool()), "relay", "--path", path, "--size", str(size),
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

class PgRelay(_PgRelay):
    def __init__(self, pg: PgCluster, path: str, sndbuf: int):
        super().__init__(f"{pg.host}:{pg.port}", free_port(avoid={pg.port}), path, sndbuf)


def run_relay_path(pg, direct: ConnInfo, path: str, what: str, args) -> dict:
    """One measured run of `what` (pgbench, or a psql command) directly or through a PgRelay of
    `path`; the relay's final counters in r["relay"] ({} directly)."""
    PATH_PIDS[:] = []
    if path == "direct":
        r = run_pgbench(direct, args.seconds) if what == "pgbench" else timed_psql(direct, what)
        r["relay"] = {}
        return r
    with PgRelay(pg, path, args.sndbuf) as relay:
        PATH_PIDS[:] = [relay.proc.pid]
        ci = ConnInfo("127.0.0.1", relay.port, BENCH_USER, ROLES[BENCH_USER].password, "bench",
                      {"connect_timeout": 10})
        r = run_pgbench(ci, args.seconds) if what == "pgbench" else timed_psql(ci, what)
    r["relay"] = relay.final
    return r


def timed_psql(ci: ConnInfo, sql: str) -> dict:
    """psql in one session, each ';'-separated statement as its own -c, output discarded."""
    env = dict(os.environ, PGPASSWORD=ci.password)
    argv = ["/usr/lib/postgresql/15/bin/psql", "-X", "-q", "-A", "-t", "-o", "/dev/null",
            "-h", ci.host, "-p", str(ci.port), "-U", ci.user, "-d", ci.dbname]
    for stmt in sql.split(";"):
        if stmt.strip():
            argv += ["-c", stmt.strip()]
    with CpuMeter(PG) as m:
        t0 = time.monotonic()
        with open(os.devnull, "wb") as devnull:
            cp = subprocess.run(argv, env=env, stdout=devnull, stderr=subprocess.PIPE,
                                timeout=600)
        t = time.monotonic() - t0
    if cp.returncode != 0:
        raise RuntimeError(cp.stderr.decode())
    out = {"seconds": t}
    out.update(m.fields(1, "run"))
    return out


def bench_splice_pg(args) -> dict:
    tests = [("pgbench -S -c16", "pgbench"),
             ("10 MB SELECT x5", ";".join(["SELECT repeat('x', 10*1024*1024)"] * 5)),
             ("COPY out 1 GB", "COPY (SELECT repeat('x', 1000) FROM generate_series(1, 1000000))"
                               " TO STDOUT")]
    if args.quick:
        tests[2] = ("COPY out 100 MB", "COPY (SELECT repeat('x', 1000) FROM "
                                       "generate_series(1, 100000)) TO STDOUT")
    results: dict = {}
    global PG
    with PgCluster(max_connections=100) as pg:
        PG = pg
        pg.pgbench_init("bench", scale=1)
        direct = ConnInfo(pg.host, pg.port, BENCH_USER, ROLES[BENCH_USER].password, "bench",
                          {"connect_timeout": 10})
        for rnd in range(args.rounds):
            for label, what in tests:
                for path in ("direct", "user", "splice"):
                    r = run_relay_path(pg, direct, path, what, args)
                    results.setdefault(label, {}).setdefault(path, []).append(r)
                    metric = (f"tps {r['tps']:8.0f} cpu/txn {r['cpu_us_per_txn']:6.1f} us"
                              if what == "pgbench" else
                              f"{r['seconds']:7.2f} s path cpu {r['path_cpu_s']:6.2f} s "
                              f"(others {r['others_cpu_s']:.2f})")
                    log(f"round {rnd + 1} {label:16s} {path:6s} {metric} load {r['load']:.1f}")
    out = {}
    print("\nsession relay in front of PostgreSQL: direct, user-space copy, kernel splice")
    for label, by_path in results.items():
        o = {}
        for path, runs in by_path.items():
            if "tps" in runs[0]:
                o[path] = {"tps": summary([x["tps"] for x in runs]),
                           "cpu_us_per_txn": summary([x["cpu_us_per_txn"] for x in runs]),
                           "ours_cpu_us_per_txn": summary([x["ours_cpu_us_per_txn"]
                                                           for x in runs])}
            else:
                o[path] = {"seconds": summary([x["seconds"] for x in runs]),
                           "path_cpu_s": summary([x["path_cpu_s"] for x in runs])}
            o[path]["others_cpu_s"] = summary([x["others_cpu_s"] for x in runs])
            o[path]["path_ours_cpu_s"] = summary([x["path_ours_cpu_s"] for x in runs])
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
                      f"{fmt(v['cpu_us_per_txn'], 1)}  ours {fmt(v['ours_cpu_us_per_txn'], 1)}"
                      f"  load {fmt(v['load'], 1)}")
            else:
                print(f"  {label:16s} {path:6s} s {fmt(v['seconds'], 2)}  path cpu s "
                      f"{fmt(v['path_cpu_s'], 2)}  ours {fmt(v['path_ours_cpu_s'], 2)}"
                      f"  others cpu s {fmt(v['others_cpu_s'], 2)}"
                      f"  load {fmt(v['load'], 1)}")
        print(f"  {label:16s} splice vs user (speed) {fmt(o['splice/user'], 2)}")
    return out


# ---- sk_msg reply path (issue 18 item 3) --------------------------------------------------------

SKMSG_SELECT = "SELECT repeat('x', 1000) FROM generate_series(1, 10000)"
SKMSG_COPY = "COPY (SELECT repeat('x', 1000) FROM generate_series(1, {rows})) TO STDOUT"
SKMSG_PATHS = ["direct", "user", "skmsg"]


def psql_sha256(ci: ConnInfo, sql: str) -> tuple[str, int]:
    """The bytes psql prints for `sql` (one session), hashed as they stream: (sha256, bytes)."""
    import hashlib
    env = dict(os.environ, PGPASSWORD=ci.password)
    argv = ["/usr/lib/postgresql/15/bin/psql", "-X", "-q", "-A", "-t", "-h", ci.host,
            "-p", str(ci.port), "-U", ci.user, "-d", ci.dbname, "-c", sql]
    h, n = hashlib.sha256(), 0
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        while chunk := p.stdout.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
        err = p.stderr.read().decode()
    if p.returncode != 0:
        raise RuntimeError(err)
    return h.hexdigest(), n


def skmsg_counters(final: dict) -> dict:
    """What the relay and the program did during one run (skmsg path): MB each way, leases."""
    k, sm = final.get("kernel", {}), final.get("skmsg", {})
    return {"redirected_mb": k.get("bytes_redirected", 0) / 1e6,
            "relay_mb": final.get("user_bytes", 0) / 1e6,
            "relay_s2c_mb": sm.get("relay_to_client_bytes", 0) / 1e6,
            "leases_armed": sm.get("armed", 0), "leases_ended": sm.get("ended", 0),
            "mismatch_bytes": sm.get("mismatch_bytes", 0),
            "framing_errors": k.get("framing_errors", 0), "not_in_map": sm.get("not_in_map", 0),
            "pulls": k.get("pulls", 0), "splits": k.get("split", 0),
            "redirect_errors": k.get("redirect_errors", 0),
            "replayed_mb": k.get("replayed_bytes", 0) / 1e6}


def skmsg_verify(pg: PgCluster, direct: ConnInfo, rows: int, sndbuf: int) -> dict:
    """Once, before the timed rounds: the bytes a client receives through each relay equal a
    direct run's (sha256 of psql's output of COPY out and of the 10k-row SELECT), and on the
    skmsg path the program redirected them and ended one lease per statement."""
    out = {}
    for label, sql in [(f"COPY out {rows // 1000} MB", SKMSG_COPY.format(rows=rows)),
                       ("SELECT 10k rows of 1 KB", SKMSG_SELECT)]:
        want = psql_sha256(direct, sql)
        row = {"direct": {"sha256": want[0], "bytes": want[1]}}
        for path in ("user", "skmsg"):
            with PgRelay(pg, path, sndbuf) as relay:
                got = psql_sha256(ConnInfo("127.0.0.1", relay.port, BENCH_USER,
                                           ROLES[BENCH_USER].password, "bench"), sql)
            row[path] = {"sha256": got[0], "bytes": got[1], "equal": got == want}
            if path == "skmsg":
                row[path].update(skmsg_counters(relay.final))
            log(f"verify {label:24s} {path:6s} equal={got == want} bytes {got[1]}"
                + (f" redirected {row[path]['redirected_mb']:.1f} MB, relay {row[path]['relay_mb']:.2f} MB,"
                   f" leases armed {row[path]['leases_armed']} ended {row[path]['leases_ended']},"
                   f" client-socket mismatch {row[path]['mismatch_bytes']} B, failed redirects "
                   f"{row[path]['redirect_errors']}, replayed {row[path]['replayed_mb']:.1f} MB"
                   if path == "skmsg" else ""))
        out[label] = row
    return out


def bench_skmsg_reply(args) -> dict:
    rows = 100_000 if args.quick else 1_000_000
    tests = [("pgbench -S -c16", "pgbench"),
             ("5 x SELECT 10k rows of 1 KB", ";".join([SKMSG_SELECT] * 5)),
             (f"COPY out {rows // 1000} MB", SKMSG_COPY.format(rows=rows))]
    results: dict = {}
    global PG
    with PgCluster(max_connections=100) as pg:
        PG = pg
        pg.pgbench_init("bench", scale=1)
        direct = ConnInfo(pg.host, pg.port, BENCH_USER, ROLES[BENCH_USER].password, "bench",
                          {"connect_timeout": 10})
        verify = skmsg_verify(pg, direct, 100_000, args.sndbuf)
        for rnd in range(args.rounds):
            for label, what in tests:
                for path in rotation(SKMSG_PATHS, rnd):
                    r = run_relay_path(pg, direct, path, what, args)
                    if path == "skmsg":
                        r.update(skmsg_counters(r["relay"]))
                    units = r.get("processed", 1)
                    # Tick accounting charges a softirq to the task it interrupted (and to
                    # /proc/stat's softirq as well): the loopback softirqs these paths raise
                    # run in their own processes, so the processes' sum holds them.
                    r["all_cpu_s"] = (r["pg_cpu_s"] + r["relay_cpu_s"] + r["client_cpu_s"]
                                      + r["kthread_cpu_s"])
                    for k in ("busy_cpu_s", "all_cpu_s", "pg_cpu_s", "relay_cpu_s",
                              "client_cpu_s"):
                        r[k.replace("_cpu_s", "_us_per_unit")] = r[k] * 1e6 / max(units, 1)
                    r["kernel_us_per_unit"] = r["kthread_cpu_s"] * 1e6 / max(units, 1)
                    results.setdefault(label, {}).setdefault(path, []).append(r)
                    main_metric = (f"tps {r['tps']:8.0f}" if what == "pgbench"
                                   else f"{r['seconds']:6.2f} s")
                    log(f"round {rnd + 1} {label:28s} {path:6s} {main_metric} busy "
                        f"{r['busy_cpu_s']:6.2f} s all-ours {r['all_cpu_s']:6.2f} s pg "
                        f"{r['pg_cpu_s']:6.2f} s relay {r['relay_cpu_s']:5.2f} s"
                        + (f" redirected {r['redirected_mb']:.1f} MB relay {r['relay_mb']:.1f} MB"
                           f" (s->c {r['relay_s2c_mb']:.3f})"
                           f" leases {r['leases_ended']}/{r['leases_armed']}"
                           f" mismatch {r['mismatch_bytes']} failed redirects "
                           f"{r['redirect_errors']} replayed {r['replayed_mb']:.1f} MB"
                           if path == "skmsg" else "")
                        + f" load {r['load']:.1f}")
    out = {"verify": verify}
    for label, by_path in results.items():
        out[label] = summarize_skmsg(label, by_path, args.rounds)
    return out


def summarize_skmsg(label: str, by_path: dict, rounds: int) -> dict:
    tps = "tps" in by_path["user"][0]
    unit = "txn" if tps else "run"
    scale = 1.0 if tps else 1e-6  # µs per transaction; s per run
    cols = ([("tps", "tps", 0)] if tps else [("seconds", "wall s", 2)]) + [
        ("busy_us_per_unit", f"machine busy {'µs/txn' if tps else 's'}", 1 if tps else 2),
        ("all_us_per_unit", f"PG+relay+client+kthreads {'µs/txn' if tps else 's'}",
         1 if tps else 2),
        ("pg_us_per_unit", f"PostgreSQL {'µs/txn' if tps else 's'}", 1 if tps else 2),
        ("relay_us_per_unit", f"relay {'µs/txn' if tps else 's'}", 1 if tps else 2),
        ("kernel_us_per_unit", f"kthreads {'µs/txn' if tps else 's'}", 1 if tps else 2),
        ("client_us_per_unit", f"client {'µs/txn' if tps else 's'}", 1 if tps else 2),
        ("load", "load", 1)]
    o: dict = {}
    rows = []
    for path in SKMSG_PATHS:
        runs = by_path[path]
        o[path] = {k: summary([r[k] * (1 if k in ("tps", "seconds", "load") else scale)
                               for r in runs]) for k, _, _ in cols}
        o[path]["runs"] = runs
        rows.append([path] + [fmt(o[path][k], d) for k, _, d in cols])
    print(f"\n### {label} (sk_msg reply path vs user-space relay), median (min-max) over "
          f"{rounds} round(s)\n")
    print(md_table(["path"] + [c for _, c, _ in cols], rows))
    key = "tps" if tps else "seconds"
    ratios = {
        "skmsg/user speed": summary([(s[key] / u[key]) if tps else (u[key] / s[key])
                                     for s, u in zip(by_path["skmsg"], by_path["user"])]),
        "skmsg/user machine busy": summary([s["busy_us_per_unit"] / u["busy_us_per_unit"]
                                            for s, u in zip(by_path["skmsg"], by_path["user"])]),
        "skmsg/user PG+relay+client+kthreads": summary([s["all_us_per_unit"] / u["all_us_per_unit"]
                                        for s, u in zip(by_path["skmsg"], by_path["user"])])}
    o["ratios"] = ratios
    print("\nper-round ratios, median (min-max): " + "; ".join(
        f"{k} {fmt(v, 2)}" for k, v in ratios.items()))
    sk = by_path["skmsg"]
    print(f"skmsg runs: redirected MB {fmt(summary([r['redirected_mb'] for r in sk]), 1)}, "
          f"relay MB {fmt(summary([r['relay_mb'] for r in sk]), 2)} (of which server to client "
          f"{fmt(summary([r['relay_s2c_mb'] for r in sk]), 3)}), leases ended/armed "
          f"{[(r['leases_ended'], r['leases_armed']) for r in sk]}"
          + (f", pgbench transactions {[r['processed'] for r in sk]}" if tps else "")
          + ", client-socket mismatch bytes "
          f"{[r['mismatch_bytes'] for r in sk]}, framing errors "
          f"{[r['framing_errors'] for r in sk]}, failed redirects "
          f"{[r['redirect_errors'] for r in sk]}, replayed MB "
          f"{[round(r['replayed_mb'], 1) for r in sk]}")
    return o


# ---- heliosproxy: user space vs kernel data path, against direct and PgBouncer ---------------

# config name -> bench/run's system (hbench.systems: same pool, auth, logging as bench/run)
PROXY_CONFIGS = {"direct": "direct", "helios-userspace": "helios",
                 "helios-kernel": "helios-kernel", "pgbouncer": "pgbouncer"}
PROXY_RATIOS = [("helios-kernel", "helios-userspace"), ("helios-kernel", "direct"),
                ("helios-userspace", "direct"), ("helios-userspace", "pgbouncer"),
                ("helios-kernel", "pgbouncer")]
COUNTER_PERIOD_S = 1.1  # the proxy adds the kernel's byte counters once a second
# heliosproxy relays the first statement of a session in user space (the kernel path takes over
# from the second), so the psql sessions open with SELECT 1, for every configuration.
SELECT_10MB = "SELECT repeat('x', 1000) FROM generate_series(1, 10000)"
TEN_MB_SELECT = ";".join(["SELECT 1"] + [SELECT_10MB] * 5)
COPY_OUT = "SELECT 1;COPY (SELECT repeat('x', 1000) FROM generate_series(1, {rows})) TO STDOUT"


@dataclass
class Workload:
    label: str
    mode: str  # the proxies' pool mode
    warm: bool  # fill the pool first (pgbench)
    run: Callable[[ConnInfo, argparse.Namespace], dict]
    metrics: list[tuple[str, str, int]]  # (result key, column, digits)
    ratios: list[str]  # keys compared per round


def pgbench_rate(ci: ConnInfo, seconds: int, rate: int = 10_000) -> dict:
    """pgbench -S -R rate; latency percentiles from its transaction log (as bench/run's
    rate_10k: measured from the scheduled start, schedule lag included)."""
    with tempfile.TemporaryDirectory(prefix="helios-kbench-") as d:
        prefix = f"{d}/txlog"
        r = run_pgbench(ci, seconds, rate=rate, extra=["-l", "--log-prefix", prefix])
        r["p99_ms"] = latency.summary(latency.read_logs(prefix).latencies_ms)["p99"]
    return r


def proxy_workloads(args) -> list[Workload]:
    txn = [("tps", "tps", 0), ("latency_ms", "latency avg ms", 3),
           ("cpu_us_per_txn", "cpu µs/txn path", 1),
           ("ours_cpu_us_per_txn", "cpu µs/txn ours", 1)]
    big = [("seconds", "wall s", 2), ("path_cpu_s", "cpu s path", 2),
           ("path_ours_cpu_s", "cpu s ours", 2)]
    rows = 100_000 if args.quick else 1_000_000
    return [
        Workload(f"pgbench -S -c16 -j2, {args.seconds} s (transaction mode, pool 20)",
                 "transaction", True, lambda ci, a: run_pgbench(ci, a.seconds), txn,
                 ["tps", "cpu_us_per_txn"]),
        Workload(f"pgbench -S -R 10000 -c16 -j2, {args.seconds} s (transaction mode, pool 20)",
                 "transaction", True, lambda ci, a: pgbench_rate(ci, a.seconds),
                 txn[:2] + [("p99_ms", "latency p99 ms", 3)] + txn[2:],
                 ["latency_ms", "p99_ms", "cpu_us_per_txn"]),
        Workload("5 x 10 MB SELECT (10k rows of 1 KB) in one psql session (session mode)",
                 "session", False, lambda ci, a: timed_psql(ci, TEN_MB_SELECT), big,
                 ["seconds", "path_cpu_s"]),
        Workload(f"COPY out of {rows // 1000} MB (1 KB rows) via psql (session mode)",
                 "session", False, lambda ci, a: timed_psql(ci, COPY_OUT.format(rows=rows)), big,
                 ["seconds", "path_cpu_s"]),
    ]


def reply_mb(system: System) -> dict:
    """Reply bytes (server to client) heliosproxy has relayed, by data path, in MB, once the
    kernel's counter has settled (data_path kernel); {} for the others."""
    if system.spec.kind != "helios":
        return {}

    def read() -> dict:
        return {f"{p}_mb": system.proxy.metric("helios_proxy_bytes_total", data_path=p,
                                               direction="server_to_client") / 1e6
                for p in ("kernel", "userspace")}
    last = read()
    for _ in range(5 if system.spec.data_path == "kernel" else 0):
        time.sleep(COUNTER_PERIOD_S)
        now = read()
        if now == last:
            break
        last = now
    return last


def run_on(system: System, w: Workload, args) -> dict:
    """One workload on one configuration, from a freshly started proxy. A failed run is
    returned as {"error": ...} (with the proxy's stderr tail) and the bench goes on."""
    try:
        system.start(ProxySettings(overrides={"proxy": {"mode": w.mode}}))
        PATH_PIDS[:] = [system.pid] if system.pid else []
        ci = system.conninfo()
        if w.warm:
            warm(ci)
        before = reply_mb(system)
        r = w.run(ci, args)
        r.update({k: v - before[k] for k, v in reply_mb(system).items()})
    except Exception as e:  # noqa: BLE001 - reported in the table
        r = {"error": str(e).strip(), "stderr_tail": system.stderr_tail(20)}
    finally:
        system.stop()
        PATH_PIDS[:] = []
    return r


def log_run(rnd: int, name: str, w: Workload, r: dict) -> None:
    what = (f"FAILED: {r['error']}" if "error" in r else "  ".join(
        f"{col} {r[k]:.{d}f}" for k, col, d in w.metrics)
        + (f"  kernel MB {r['kernel_mb']:.1f}" if "kernel_mb" in r else "")
        + f"  load {r['load']:.1f}")
    log(f"round {rnd + 1} {name:16s} {what}  | {w.label}")


def bench_proxy(args) -> dict:
    workloads = proxy_workloads(args)
    results: dict[str, dict[str, list[dict]]] = {w.label: {} for w in workloads}
    global PG
    with PgCluster(max_connections=100) as pg:
        PG = pg
        pg.pgbench_init("bench", scale=1)
        systems = {name: System(SPECS[spec], pg) for name, spec in PROXY_CONFIGS.items()}
        try:
            for rnd in range(args.rounds):
                for w in workloads:
                    for name in rotation(list(systems), rnd):
                        r = run_on(systems[name], w, args)
                        results[w.label].setdefault(name, []).append(r)
                        log_run(rnd, name, w, r)
        finally:
            for s in systems.values():
                s.stop()
    out = {}
    for w in workloads:
        out[w.label] = summarize_proxy(w, results[w.label])
        print_proxy_table(w, out[w.label], args.rounds)
    return out


def summarize_proxy(w: Workload, by_config: dict[str, list[dict]]) -> dict:
    """Per configuration: median (min-max) of the runs that succeeded; per ratio: of the
    rounds where both succeeded (None if none did; a CPU time of 0 or less, which tick-based
    accounting gives a short direct run, is left out)."""
    keys = [k for k, _, _ in w.metrics] + ["kernel_mb", "userspace_mb", "load"]
    configs = {}
    for name, runs in by_config.items():
        ok = [r for r in runs if "error" not in r]
        configs[name] = {k: summary([r[k] for r in ok]) for k in keys if ok and k in ok[0]}
        configs[name].update(failed=len(runs) - len(ok), runs=runs)

    def ratio(a: str, b: str, k: str) -> Optional[dict]:
        v = [x[k] / y[k] for x, y in zip(by_config[a], by_config[b])
             if "error" not in x and "error" not in y and y[k] > 0]
        return summary(v) if v else None
    ratios = {f"{a} / {b}": {k: ratio(a, b, k) for k in w.ratios} for a, b in PROXY_RATIOS}
    return {"configs": configs, "ratios": ratios}


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header)] + rows
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def print_proxy_table(w: Workload, o: dict, rounds: int) -> None:
    def cell(v: dict, key: str, digits: int) -> str:
        return fmt(v[key], digits) if key in v else "-"
    cols = w.metrics + [("kernel_mb", "kernel s→c MB", 1), ("userspace_mb", "user s→c MB", 1),
                        ("load", "load", 1)]
    print(f"\n### {w.label}\nmedian (min-max) over {rounds} round(s)\n")
    print(md_table(["config"] + [c for _, c, _ in cols],
                   [[name] + [cell(v, k, d) for k, _, d in cols]
                    for name, v in o["configs"].items()]))
    column = {k: c for k, c, _ in w.metrics}
    print("\nper-round ratios, median (min-max)\n")
    print(md_table(["ratio"] + [column[k] for k in w.ratios],
                   [[name] + [fmt(v[k], 2) if v[k] else "-" for k in w.ratios]
                    for name, v in o["ratios"].items()]))
    for name, v in o["configs"].items():
        errors = [r["error"].splitlines()[0] for r in v["runs"] if "error" in r]
        if errors:
            print(f"\n{name}: {len(errors)} of {len(v['runs'])} run(s) failed: {errors[0]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", choices=["bypass", "relay", "splice-pg", "skmsg-reply", "proxy",
                                    "all"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--sndbuf", type=int, default=16 * 1024 * 1024,
                    help="SO_SNDBUF of spliced/relayed sockets (0 = autotuned)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, short")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 3
    if os.geteuid() != 0:
        sys.exit("run as root (BPF, cgroups)")
    if args.what != "proxy":  # the proxy bench runs heliosproxy itself, not kernel_tool
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
    if args.what in ("skmsg-reply", "all"):
        out["skmsg_reply"] = bench_skmsg_reply(args)
    if args.what in ("proxy", "all"):
        out["proxy"] = bench_proxy(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
