#!/usr/bin/python3
"""Edge guard benchmarks (run as root; needs a built heliosctl, bpftool, ip, nsenter).

  pps    packets per second through the XDP program with BPF_PROG_TEST_RUN repeat
         (`bpftool prog run ... repeat N`), per packet kind: not for the VIP, VIP ACK (tenant
         lookup + counters), VIP SYN admitted, VIP SYN dropped.
  storm  connects per second of a connection storm from one tenant prefix over veth between two
         namespaces: no guard, guard with a budget that does not bind, guard throttling the
         tenant to a small budget.

  bench/edge/edge_bench.py [pps|storm|all] [--json FILE] [--repeat N] [--connects N]

Uses the namespace topology of tests/integration/edge_helpers.py and cleans everything up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import edge_helpers as eh  # noqa: E402

SERVER_SCRIPT = textwrap.dedent(r"""
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[1])))
    s.listen(65535)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        c.close()
""")


def frame(src: str, dst: str, dport: int, flags: int) -> bytes:
    eth = bytes.fromhex("020000000001020000000002") + struct.pack("!H", 0x0800)
    tcp = struct.pack("!HHIIBBHHH", 40000, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return eth + ip + tcp


def bpftool_run(pin: Path, data: bytes, repeat: int) -> tuple[int, float]:
    with tempfile.NamedTemporaryFile(suffix=".pkt") as f:
        f.write(data)
        f.flush()
        cp = eh.sh(["bpftool", "prog", "run", "pinned", str(pin), "data_in", f.name,
                    "data_out", "/dev/null", "repeat", str(repeat)], timeout=300)
    text = cp.stdout + cp.stderr
    rv = int(re.search(r"Return value:\s*(\d+)", text).group(1))
    ns = float(re.search(r"duration \(average\):\s*(\d+)ns", text).group(1))
    return rv, ns


def bench_pps(repeat: int) -> dict:
    topo = eh.EdgeTopology("p")
    try:
        topo.create()
        port = 5432
        topo.attach("--vip", f"{eh.VIP}:{port}",
                    "--tenant", f"noisy={eh.TENANT_A_CIDR}:0.001:1",      # 1 SYN, then drops
                    "--tenant", f"open={eh.TENANT_B_CIDR}:1000000:100000000")  # never binds
        pin = topo.pin_dir / "xdp_guard_prog"
        cases = {
            "non_vip_tcp": frame(eh.TENANT_B_IP, "10.77.0.1", 22, 0x02),
            "vip_ack": frame(eh.TENANT_B_IP, eh.VIP, port, 0x10),
            "vip_syn_admitted": frame(eh.TENANT_B_IP, eh.VIP, port, 0x02),
            "vip_syn_dropped": frame(eh.TENANT_A_IP, eh.VIP, port, 0x02),
        }
        out = {}
        for name, data in cases.items():
            rv, ns = bpftool_run(pin, data, repeat)
            out[name] = {"verdict": {1: "XDP_DROP", 2: "XDP_PASS"}.get(rv, rv), "ns_per_packet": ns,
                         "mpps": round(1000.0 / ns, 2) if ns else None, "repeat": repeat}
        return out
    finally:
        topo.close()


def bench_storm(n: int) -> dict:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = n + 1000
    if hard != resource.RLIM_INFINITY and hard < want:
        n = hard - 1000
    resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY
                                                else min(want, hard), hard))
    topo = eh.EdgeTopology("s")
    server = None
    try:
        topo.create()
        port = 7000
        server = subprocess.Popen(["nsenter", f"--net=/run/netns/{topo.server}", sys.executable,
                                   "-c", SERVER_SCRIPT, str(port)], stdout=subprocess.PIPE,
                                  text=True)
        assert server.stdout.readline().strip() == "ready"
        results = {}

        def run(label: str) -> None:
            time.sleep(0.5)
            r = eh.storm(topo, eh.TENANT_A_IP, port, n, window=3.0)
            span = r["last_ok_s"] or r["elapsed_s"]
            r["connects_per_s"] = round(r["connected"] / span) if span else 0
            results[label] = r

        run("no_guard")
        topo.attach("--vip", f"{eh.VIP}:{port}",
                    "--tenant", f"storm={eh.TENANT_A_CIDR}:1000000:1000000")
        run("guard_not_limiting")
        topo.attach("--update", "--vip", f"{eh.VIP}:{port}",
                    "--tenant", f"storm={eh.TENANT_A_CIDR}:100:100")
        time.sleep(1.0)  # the bucket refills to its burst
        run("guard_tenant_100_per_s")
        topo.detach()
        return results
    finally:
        if server:
            server.kill()
            server.wait()
        topo.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="?", default="all", choices=["pps", "storm", "all"])
    ap.add_argument("--repeat", type=int, default=5_000_000)
    ap.add_argument("--connects", type=int, default=10000)
    ap.add_argument("--json", help="write results here too")
    args = ap.parse_args()
    why = eh.why_no_netns()
    if why:
        print(f"edge bench: SKIP: {why}", file=sys.stderr)
        return 0
    res = {"kernel": os.uname().release, "cpus": os.cpu_count()}
    if args.what in ("pps", "all"):
        res["pps"] = bench_pps(args.repeat)
        for k, v in res["pps"].items():
            print(f"pps  {k:18s} {v['verdict']:9s} {v['ns_per_packet']:6.0f} ns/pkt "
                  f"{v['mpps']:6.2f} Mpps (BPF_PROG_TEST_RUN repeat {v['repeat']})")
    if args.what in ("storm", "all"):
        res["storm"] = bench_storm(args.connects)
        for k, v in res["storm"].items():
            print(f"storm {k:24s} {v['connected']:6d}/{v['attempted']} connected, "
                  f"{v['connects_per_s']:7d} connects/s (last at {v['last_ok_s'] or 0:.3f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
