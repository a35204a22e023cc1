#!/usr/bin/python3
"""100,000 logged-in clients on one box (issue 16, "Scale and speed"): one process may hold
only 20,000 file descriptors here, so N heliosproxy instances share one SO_REUSEPORT port and,
through a throwaway redis-server, one pool maximum (the backends of all instances together)
and one tenant max_connections. Idle clients are opened by several idle_clients.py processes
(real startup + SCRAM logins, bench/hbench/idle_clients.py), from several loopback source
addresses; a pgbench -S runs beside them, then every client runs SELECT 1.

  /usr/bin/python3 bench/fleet/huge_idle.py [--clients 100000] [--instances 6]
      [--backends 100] [--openers 6] [--timeout 900] [--json out.json]

Prints per instance: clients held (from its admin API), RSS, backends; in all: logins that
failed (and why), clients lost while idle, pgbench tps and errors beside them, SELECT 1 results,
peak backends in pg_stat_activity against the fleet-wide maximum. Exit status 1 if any client
failed, was lost, or the backends went past the maximum.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from harness import (BENCH_USER, BackendSampler, PgCluster, RedisServer, pgbench,  # noqa: E402
                     start_proxy)
from hbench.idle import IdleOpener, OpenerError, sources  # noqa: E402

APP = "bench_idle"  # the tenant of the idle clients (idle_clients.py's application_name)


class Target:
    """What IdleOpener needs of a system: where to connect."""

    def __init__(self, ci) -> None:
        self._ci = ci

    def conninfo(self):
        return self._ci


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start_fleet(pg, redis, n: int, backends: int, clients: int) -> list:
    per_instance = clients // n + 2000  # SO_REUSEPORT spreads by hash, not exactly evenly
    procs = []
    for i in range(n):
        ov = {
            "proxy": {"mode": "transaction"},
            "backend": {"max_connections": backends},  # fleet-wide with [fleet]
            "connection_pool": {"max_client_connections": per_instance},
            "fleet": {"redis_url": redis.url, "instance_id": f"huge-{i}",
                      "renew_interval": "200ms", "instance_ttl": "2s"},
            "tenant_quotas": {"enabled": True, "identifier": "application_name",
                              "limits": [{"tenant_pattern": APP, "max_connections": clients}]},
        }
        if procs:
            ov["proxy"]["listen_address"] = procs[0].config["proxy"]["listen_address"]
        procs.append(start_proxy(pg, ov))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(p.admin_get("/api/v1/fleet").json().get("live_instances") == n for p in procs):
            break
        time.sleep(0.1)
    return procs


def tally(replies: list[dict], since: float) -> dict:
    """The openers' answers to one command, summed: ok, errors, seconds since `since`, and the
    error samples of the openers that had errors."""
    return {"ok": sum(r.get("ok", 0) for r in replies),
            "errors": sum(r.get("errors", 0) for r in replies),
            "seconds": round(time.monotonic() - since, 1),
            "error_samples": [r.get("error_samples") for r in replies if r.get("errors")]}


def instance_clients(p) -> int:
    try:
        return int(p.admin_get("/api/v1/pool/stats", timeout=5).json().get("client_connections",
                                                                           -1))
    except Exception:  # noqa: BLE001 - reported as -1
        return -1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=100_000)
    ap.add_argument("--instances", type=int, default=6)
    ap.add_argument("--backends", type=int, default=100)
    ap.add_argument("--openers", type=int, default=6)
    ap.add_argument("--sources", type=int, default=8, help="loopback source addresses")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    out: dict = {"clients": a.clients, "instances": a.instances, "backends": a.backends}
    errors: list[str] = []
    t0 = time.monotonic()
    with PgCluster(max_connections=a.backends + 50) as pg, RedisServer() as redis:
        pg.pgbench_init("bench", scale=1)
        procs = start_fleet(pg, redis, a.instances, a.backends, a.clients)
        openers: list[IdleOpener] = []
        try:
            port = procs[0].port
            print(f"{a.instances} instances on 127.0.0.1:{port} (one SO_REUSEPORT group), "
                  f"pool maximum {a.backends} backends and tenant {APP} max_connections "
                  f"{a.clients} for the whole fleet (redis {redis.url})", flush=True)
            rss0 = [rss_mb(p.proc.pid) for p in procs]
            ci = procs[0].conninfo(BENCH_USER, "bench")
            srcs = sources(a.sources)
            per = [a.clients // a.openers + (1 if i < a.clients % a.openers else 0)
                   for i in range(a.openers)]
            t_open = time.monotonic()
            for n in per:
                openers.append(IdleOpener(Target(ci), n, srcs, a.timeout))
            out["opened"] = tally([o.read(a.timeout + 120) for o in openers], t_open)
            ok, failed = out["opened"]["ok"], out["opened"]["errors"]
            print(f"opened {ok:,} of {a.clients:,} logins in "
                  f"{out['opened']['seconds']:.0f} s, {failed} failed "
                  f"{out['opened']['error_samples'] or ''}", flush=True)
            if failed:
                errors.append(f"{failed} logins failed")
            time.sleep(2)
            held = [instance_clients(p) for p in procs]
            rss1 = [rss_mb(p.proc.pid) for p in procs]
            out["instances_detail"] = [
                {"instance": i, "clients": held[i], "rss_mb_before": round(rss0[i], 1),
                 "rss_mb": round(rss1[i], 1),
                 "bytes_per_client": round((rss1[i] - rss0[i]) * 1024 * 1024 / max(1, held[i]))}
                for i in range(len(procs))]
            for d in out["instances_detail"]:
                print(f"  instance {d['instance']}: {d['clients']:,} clients, RSS "
                      f"{d['rss_mb_before']:.0f} -> {d['rss_mb']:.0f} MB "
                      f"({d['bytes_per_client']} B/client)", flush=True)
            # pgbench beside them, backends sampled against the fleet-wide maximum.
            with BackendSampler(pg, interval=0.05) as sampler:
                r = pgbench(procs[0].conninfo(BENCH_USER, "bench", application_name="beside"),
                            clients=16, jobs=2, seconds=10, select_only=True, timeout=120)
            peak = sampler.max_by_user.get(BENCH_USER, 0)
            out["pgbench_beside"] = {"tps": round(r.tps), "processed": r.processed,
                                     "failed": r.failed, "errors": len(r.errors)}
            out["peak_backends"] = peak
            print(f"pgbench -S -c16 beside them: {r.tps:.0f} tps, {r.failed} failed, "
                  f"{len(r.errors)} errors; peak backends {peak} (maximum {a.backends})",
                  flush=True)
            if not r.clean:
                errors.append(f"pgbench beside: {r.summary()}")
            if peak > a.backends:
                errors.append(f"{peak} backends, past the fleet-wide maximum {a.backends}")
            lost = 0
            for o in openers:
                st = o.command("status", 120)
                lost += st.get("lost", 0)
            out["lost_while_idle"] = lost
            if lost:
                errors.append(f"{lost} idle clients were disconnected")
            t_check = time.monotonic()
            results: list[dict] = [{} for _ in openers]

            def check(i: int) -> None:
                try:
                    results[i] = openers[i].command(f"check 500 {a.timeout:.0f}", a.timeout + 120)
                except OpenerError as e:
                    results[i] = {"ok": 0, "errors": per[i], "error_samples": {str(e): 1}}

            threads = [threading.Thread(target=check, args=(i,)) for i in range(len(openers))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            out["select_1"] = tally(results, t_check)
            c_ok, c_err = out["select_1"]["ok"], out["select_1"]["errors"]
            print(f"SELECT 1 on every client: {c_ok:,} ok, {c_err} failed in "
                  f"{out['select_1']['seconds']:.0f} s {out['select_1']['error_samples'] or ''}",
                  flush=True)
            if c_err:
                errors.append(f"SELECT 1 failed on {c_err} clients")
            out["rss_mb_after_check"] = [round(rss_mb(p.proc.pid), 1) for p in procs]
        except OpenerError as e:
            errors.append(str(e))
        finally:
            for o in openers:
                o.close()
            for p in procs:
                try:
                    p.stop(expect_exit=0)
                except Exception as e:  # noqa: BLE001 - reported
                    errors.append(f"instance did not stop cleanly: {str(e).splitlines()[0]}")
                finally:
                    p.cleanup()
    out["errors"] = errors
    out["seconds"] = round(time.monotonic() - t0, 1)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    print(("OK" if not errors else "ERRORS: " + "; ".join(errors)) + f" ({out['seconds']:.0f} s)")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
