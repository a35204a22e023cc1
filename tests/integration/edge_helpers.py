"""Helpers for the XDP edge guard tests (test_edge_*.py) and bench/edge.

Topology made by EdgeTopology (names carry the pid so parallel runs do not collide):

    client netns  <veth cli_if> ===== <veth srv_if>  server netns (guard attached here)
      10.77.0.2/24, tenant A 10.77.1.2, tenant B 10.77.2.2     10.77.0.1/24, VIP 10.77.100.1 on lo
      route VIP via 10.77.0.1 src 10.77.2.2 (libpq cannot bind, so psql comes from tenant B)

Commands that need /sys/fs/bpf run through `nsenter --net=/run/netns/X` (`ip netns exec`
remounts /sys and hides bpffs). Everything is removed by close(), which the fixtures call from
finalizers, so a failing test leaves no namespace, link or pin behind.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
PIN_ROOT = Path("/sys/fs/bpf/helios")
CLONE_NEWNET = 0x40000000

VIP = "10.77.100.1"
SERVER_IP = "10.77.0.1"
CLIENT_IP = "10.77.0.2"
TENANT_A_IP = "10.77.1.2"
TENANT_A_CIDR = "10.77.1.0/24"
TENANT_B_IP = "10.77.2.2"
TENANT_B_CIDR = "10.77.2.0/24"
# IPv6 twins (no DAD, so the addresses work at once).
VIP6 = "fd77:100::1"
SERVER_IP6 = "fd77::1"
CLIENT_IP6 = "fd77::2"
TENANT_A6_IP = "fd77:1::2"
TENANT_A6_CIDR = "fd77:1::/64"


def build_dir() -> Path:
    return Path(os.environ.get("HELIOS_BUILD_DIR", REPO / "build"))


def heliosctl() -> Path:
    return build_dir() / "heliosctl"


def sh(argv: Sequence[str], *, timeout: float = 30, check: bool = True,
       input: Optional[str] = None) -> subprocess.CompletedProcess:
    cp = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input)
    if check and cp.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} -> {cp.returncode}\n{cp.stdout}\n{cp.stderr}")
    return cp


def why_no_netns() -> Optional[str]:
    """None when this machine can run the namespace tests, else the reason (for pytest.skip)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, XDP)"
    for tool in ("ip", "nsenter", "bpftool"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} not installed"
    if not heliosctl().exists():
        return f"{heliosctl()} not built"
    if not os.path.ismount("/sys/fs/bpf"):
        cp = sh(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=False)
        if cp.returncode != 0:
            return "no bpffs at /sys/fs/bpf and mounting it failed: " + cp.stderr.strip()
    return None


_libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def in_netns(name: str):
    """Moves this (single) thread into netns `name` for the block: children started inside
    (pg_ctl, servers) stay there."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({name})")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns(back)")
    finally:
        os.close(target)
        os.close(own)


class EdgeTopology:
    """Two namespaces and a veth pair, addressed as in the module docstring."""

    def __init__(self, tag: str = "t") -> None:
        pid = os.getpid() % 100000
        self.server = f"hedge-s{tag}-{pid}"
        self.client = f"hedge-c{tag}-{pid}"
        self.srv_if = f"hes{tag}{pid}"[:15]
        self.cli_if = f"hec{tag}{pid}"[:15]
        self.instance = f"itest-{tag}-{pid}"
        self._made: list[str] = []
        self._attached = False

    def ns(self, name: str, argv: Sequence[str], **kw) -> subprocess.CompletedProcess:
        return sh(["nsenter", f"--net=/run/netns/{name}", *argv], **kw)

    def srv(self, argv: Sequence[str], **kw) -> subprocess.CompletedProcess:
        return self.ns(self.server, argv, **kw)

    def cli(self, argv: Sequence[str], **kw) -> subprocess.CompletedProcess:
        return self.ns(self.client, argv, **kw)

    def create(self) -> "EdgeTopology":
        for n in (self.server, self.client):
            sh(["ip", "netns", "add", n])
            self._made.append(n)
        sh(["ip", "link", "add", self.srv_if, "netns", self.server, "type", "veth", "peer",
            "name", self.cli_if, "netns", self.client])
        s, c = self.srv, self.cli
        for run, ifname in ((s, self.srv_if), (c, self.cli_if)):
            run(["ip", "link", "set", "lo", "up"])
            run(["ip", "link", "set", ifname, "up"])
        s(["ip", "addr", "add", f"{SERVER_IP}/24", "dev", self.srv_if])
        s(["ip", "route", "add", TENANT_A_CIDR, "dev", self.srv_if])
        s(["ip", "route", "add", TENANT_B_CIDR, "dev", self.srv_if])
        s(["ip", "route", "add", "local", f"{VIP}/32", "dev", "lo"])
        c(["ip", "addr", "add", f"{CLIENT_IP}/24", "dev", self.cli_if])
        c(["ip", "addr", "add", f"{TENANT_A_IP}/32", "dev", self.cli_if])
        c(["ip", "addr", "add", f"{TENANT_B_IP}/32", "dev", self.cli_if])
        c(["ip", "route", "add", f"{VIP}/32", "via", SERVER_IP, "src", TENANT_B_IP])
        s(["ip", "-6", "addr", "add", f"{SERVER_IP6}/64", "dev", self.srv_if, "nodad"])
        s(["ip", "-6", "route", "add", TENANT_A6_CIDR, "dev", self.srv_if])
        s(["ip", "-6", "route", "add", "local", f"{VIP6}/128", "dev", "lo"])
        c(["ip", "-6", "addr", "add", f"{CLIENT_IP6}/64", "dev", self.cli_if, "nodad"])
        c(["ip", "-6", "addr", "add", f"{TENANT_A6_IP}/128", "dev", self.cli_if, "nodad"])
        c(["ip", "-6", "route", "add", f"{VIP6}/128", "via", SERVER_IP6, "src", CLIENT_IP6])
        # A storm leaves thousands of sockets in TIME_WAIT/SYN_SENT; keep ports available.
        c(["sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=10000 65000"])
        s(["sysctl", "-q", "-w", "net.ipv4.tcp_max_syn_backlog=8192"])
        s(["sysctl", "-q", "-w", "net.core.somaxconn=8192"])
        return self

    # -- guard ---------------------------------------------------------------------------------
    def attach(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cp = self.srv([str(heliosctl()), "attach", "--dev", self.srv_if, "--instance",
                       self.instance, *args], check=check)
        if cp.returncode == 0:
            self._attached = True
        return cp

    def detach(self, check: bool = True) -> subprocess.CompletedProcess:
        cp = self.srv([str(heliosctl()), "detach", "--dev", self.srv_if, "--instance",
                       self.instance], check=check)
        if cp.returncode == 0:
            self._attached = False
        return cp

    @property
    def pin_dir(self) -> Path:
        return PIN_ROOT / self.instance

    def xdp_prog_on_link(self) -> Optional[int]:
        out = self.srv(["ip", "-j", "link", "show", "dev", self.srv_if]).stdout
        info = json.loads(out)[0]
        xdp = info.get("xdp") or {}
        prog = xdp.get("prog") or {}
        if "id" in prog:
            return int(prog["id"])
        for p in xdp.get("attached", []):
            if "prog" in p:
                return int(p["prog"]["id"])
        return None

    def map_dump(self, name: str) -> list:
        """Entries as bpftool formats them from BTF: {"key": .., "value"/"values": {named}}."""
        cp = sh(["bpftool", "-j", "map", "dump", "pinned", str(self.pin_dir / name)])
        return [e["formatted"] for e in json.loads(cp.stdout)]

    def tenant_ids(self) -> dict[str, int]:
        ids = {}
        for e in self.map_dump("tenant_rules"):
            v = e["value"]
            if v["flags"] & 1:
                ids[v["name"]] = int(e["key"])
        return ids

    def counters_from_bpftool(self) -> dict[int, dict[str, int]]:
        """tenant id -> counters summed over CPUs, straight from `bpftool map dump`."""
        out: dict[int, dict[str, int]] = {}
        for e in self.map_dump("tenant_counters"):
            total: dict[str, int] = {}
            for cpu in e["values"]:
                for k, v in cpu["value"].items():
                    total[k] = total.get(k, 0) + int(v)
            out[int(e["key"])] = total
        return out

    def close(self) -> None:
        if self._attached:
            self.detach(check=False)
        for n in reversed(self._made):
            sh(["ip", "netns", "del", n], check=False)
        self._made.clear()
        # Pins live in the global bpffs: a failed detach must not leave them behind.
        if self.pin_dir.exists():
            for f in self.pin_dir.iterdir():
                f.unlink()
            self.pin_dir.rmdir()
        try:
            PIN_ROOT.rmdir()
        except OSError:
            pass


# -- connection storm --------------------------------------------------------------------------

STORM_SCRIPT = textwrap.dedent(r"""
    import errno, json, selectors, socket, sys, time
    src, dst, port, n, window = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    sel = selectors.DefaultSelector()
    socks = []
    t0 = time.monotonic()
    for i in range(n):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.setblocking(False)
        s.bind((src, 0))
        e = s.connect_ex((dst, port))
        if e not in (0, errno.EINPROGRESS):
            s.close(); continue
        sel.register(s, selectors.EVENT_WRITE)
        socks.append(s)
    sent = time.monotonic() - t0
    ok = refused = 0
    pending = len(socks)
    first_ok = last_ok = None
    deadline = t0 + window
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            s = key.fileobj
            sel.unregister(s)
            pending -= 1
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0:
                ok += 1
                now = time.monotonic() - t0
                first_ok = now if first_ok is None else first_ok
                last_ok = now
            else:
                refused += 1
    elapsed = time.monotonic() - t0
    for s in socks:
        s.close()  # SO_LINGER 0: RST, no TIME_WAIT; a SYN_SENT socket just goes away
    print(json.dumps({"attempted": n, "connected": ok, "refused": refused, "pending": pending,
                      "send_s": sent, "elapsed_s": elapsed, "last_ok_s": last_ok}))
""")


def storm(topo: EdgeTopology, src: str, port: int, n: int, window: float,
          dst: str = VIP) -> dict:
    """n non-blocking connects from `src` (in the client netns) to dst:port; counts those
    established within `window` seconds. SYNs the guard dropped stay pending (the kernel would
    retransmit them only after 1 s)."""
    cp = topo.cli([sys.executable, "-c", STORM_SCRIPT, src, dst, str(port), str(n),
                   str(window)], timeout=window + 60)
    return json.loads(cp.stdout)
