"""CPU per transaction of one heliosproxy with [fleet] off and on (issue 16), runs alternating:
pgbench -S -c16 -j2 -T10 through one instance, a tenant with max_connections, max_active and
max_qps. Usage: /usr/bin/python3 bench/fleet/cpu_per_txn.py (from the repo root; builds in build/)."""
import os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))
from harness import PgCluster, start_proxy, pgbench, BENCH_USER, RedisServer
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
with PgCluster(max_connections=100) as pg, RedisServer() as r:
    pg.pgbench_init("bench", scale=1)
    rules = {"tenant_quotas": {"enabled": True, "identifier": "application_name",
             "limits": [{"tenant_pattern": "t*", "max_connections": 100, "max_qps": 1000000, "max_active": 50}]}}
    for name, extra in (("off", {}), ("on", {"fleet": {"redis_url": r.url, "renew_interval": "200ms"}}),
                        ("off", {}), ("on", {"fleet": {"redis_url": r.url, "renew_interval": "200ms"}})):
        ov = dict(rules, **extra)
        ov["backend"] = {"max_connections": 16}
        p = start_proxy(pg, ov)
        c0 = cpu(p.proc.pid)
        res = pgbench(p.conninfo(BENCH_USER, "bench", application_name="t1"), clients=16, jobs=2, seconds=10, select_only=True)
        c1 = cpu(p.proc.pid)
        print(f"fleet {name}: tps {res.tps:.0f}, proxy CPU {c1-c0:.2f} s, {1e6*(c1-c0)/max(1,res.processed):.1f} us/txn, failed {res.failed}", flush=True)
        p.stop(); p.cleanup()
