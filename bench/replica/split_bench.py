#!/usr/bin/python3
"""The read/write split's speed (issue 17, "Speed"), in one run on one box: a primary and two
streaming replicas (pg_basebackup -R), one heliosproxy in front of them.

1. pgbench -S (read-only) with [routing] read_write_split on (reads go to the replicas) and off
   (everything on the primary), alternating: tps and the proxy's CPU per transaction.
2. The cost of read-your-writes tracking on a write-heavy load: pgbench's default TPC-B-like
   script with the split on (every transaction writes, so each client stays on the primary
   and its read-your-writes position is tracked) and off.

  /usr/bin/python3 bench/replica/split_bench.py [--pairs 2] [--seconds 10] [--clients 16]
(from the repository root; uses build/ or HELIOS_BUILD_DIR)

On one 2-core box the three PostgreSQL servers share the cores with the proxy and pgbench, so
the split cannot add CPU here; it shows what routing costs the proxy and that reads spread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from harness import BENCH_USER, pgbench, start_proxy  # noqa: E402
from harness.replicaset import ReplicaSet  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reads_by_host(rs, before: dict) -> dict:
    """Statements run per server since `before` (pg_stat_database xact_commit of bench)."""
    now = {}
    for name, node in [("primary", rs.primary)] + [(f"replica{i}", r)
                                                   for i, r in enumerate(rs.replicas)]:
        now[name] = int(node.query("SELECT xact_commit FROM pg_stat_database "
                                   "WHERE datname = 'bench'")[0][0])
    return {k: now[k] - before.get(k, 0) for k in now}, now


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=16)
    a = ap.parse_args()
    rs = ReplicaSet(replicas_count=2, pgbench_scale=1)
    rs.start()
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        rs.wait_caught_up()
        hosts = [rs.primary] + rs.replicas
        base = {"backend": {"host": None, "port": None,
                            "hosts": [f"127.0.0.1:{n.port}" for n in hosts],
                            "health_check_interval": "200ms", "max_replica_lag": "1s",
                            "max_connections": 20}}
        _, counts = reads_by_host(rs, {})
        for load in ("select-only", "tpcb-like"):
            order = []
            for i in range(a.pairs):
                order += ["off", "on"] if i % 2 == 0 else ["on", "off"]
            for split in order:
                ov = dict(base, routing={"read_write_split": split == "on"})
                p = start_proxy(rs.primary, ov)
                try:
                    c0 = cpu_seconds(p.proc.pid)
                    r = pgbench(p.conninfo(BENCH_USER, "bench"), clients=a.clients, jobs=2,
                                seconds=a.seconds, select_only=load == "select-only",
                                timeout=a.seconds + 60)
                    c1 = cpu_seconds(p.proc.pid)
                finally:
                    p.stop()
                    p.cleanup()
                spread, counts = reads_by_host(rs, counts)
                us = 1e6 * (c1 - c0) / max(1, r.processed)
                results.setdefault((load, split), []).append((r.tps, us))
                print(f"{load:<12} split {split:>3}: tps {r.tps:7.0f}, proxy {us:5.1f} us/txn, "
                      f"failed {r.failed}, transactions per server {spread}", flush=True)
                rs.wait_caught_up()
    finally:
        rs.stop()
    print()
    for load in ("select-only", "tpcb-like"):
        off = results[(load, "off")]
        on = results[(load, "on")]
        tps_off, tps_on = (statistics.median(t for t, _ in x) for x in (off, on))
        us_off, us_on = (statistics.median(u for _, u in x) for x in (off, on))
        print(f"{load:<12} median: split off {tps_off:.0f} tps {us_off:.1f} us/txn, "
              f"split on {tps_on:.0f} tps {us_on:.1f} us/txn; tps on/off {tps_on / tps_off:.2f}, "
              f"CPU on/off {us_on / us_off:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
