#!/usr/bin/python3
"""CPU per transaction of one heliosproxy with [fleet] off and on (issue 16: within 5%), in one
run: pgbench -S -c16 -j2 through one instance for a tenant with max_connections, max_active and
max_qps set, the two settings alternating (off, on, on, off, ...) so that drift in the machine's
load hits both alike. Proxy CPU is read from /proc/PID/stat around each pgbench run.

  /usr/bin/python3 bench/fleet/cpu_per_txn.py [--pairs 3] [--seconds 10]
(from the repository root; uses build/ or HELIOS_BUILD_DIR)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from harness import BENCH_USER, PgCluster, RedisServer, pgbench, start_proxy  # noqa: E402

RULES = {"tenant_quotas": {"enabled": True, "identifier": "application_name",
                           "limits": [{"tenant_pattern": "t*", "max_connections": 100,
                                       "max_qps": 1000000, "max_active": 50}]}}


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args()
    per: dict[str, list[float]] = {"off": [], "on": []}
    with PgCluster(max_connections=100) as pg, RedisServer() as redis:
        pg.pgbench_init("bench", scale=1)
        order = []
        for i in range(a.pairs):
            order += ["off", "on"] if i % 2 == 0 else ["on", "off"]
        for name in order:
            ov = dict(RULES, backend={"max_connections": 16})
            if name == "on":
                ov["fleet"] = {"redis_url": redis.url, "renew_interval": "200ms"}
            p = start_proxy(pg, ov)
            try:
                c0 = cpu_seconds(p.proc.pid)
                r = pgbench(p.conninfo(BENCH_USER, "bench", application_name="t1"), clients=16,
                            jobs=2, seconds=a.seconds, select_only=True)
                c1 = cpu_seconds(p.proc.pid)
            finally:
                p.stop()
                p.cleanup()
            us = 1e6 * (c1 - c0) / max(1, r.processed)
            per[name].append(us)
            print(f"fleet {name:>3}: tps {r.tps:7.0f}, proxy CPU {c1 - c0:5.2f} s, "
                  f"{us:5.1f} us/txn, failed {r.failed}", flush=True)
    off, on = statistics.median(per["off"]), statistics.median(per["on"])
    print(f"median us/txn: off {off:.1f}, on {on:.1f}; on/off = {on / off:.3f} "
          f"(runs off {[round(x, 1) for x in per['off']]}, on {[round(x, 1) for x in per['on']]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
