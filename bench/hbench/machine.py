"""What the report records about the machine: CPU, memory, kernel, versions, load, limits."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from . import procfs

REPO = Path(__file__).resolve().parents[2]


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "?"


def _cmd(argv: list[str]) -> str:
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (cp.stdout or cp.stderr).strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"? ({e})"


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def mem_total_mb() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def git_revision() -> str:
    rev = _cmd(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _cmd(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return rev + (" (with uncommitted changes)" if dirty and not dirty.startswith("?") else "")


def machine_info(systems) -> dict:
    return {
        "host": platform.node(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_mb": mem_total_mb(),
        "kernel": platform.release(),
        "os": _read("/etc/debian_version"),
        "python": platform.python_version(),
        "pgbench": _cmd([os.path.join(os.environ.get("HELIOS_PG_BIN",
                                                     "/usr/lib/postgresql/15/bin"), "pgbench"),
                         "--version"]),
        "versions": {s.name: s.version() for s in systems},
        "git": git_revision(),
        "loadavg_start": procfs.loadavg(),
        "somaxconn": _read("/proc/sys/net/core/somaxconn"),
        "ip_local_port_range": _read("/proc/sys/net/ipv4/ip_local_port_range"),
        "nf_conntrack_max": _read("/proc/sys/net/netfilter/nf_conntrack_max"),
    }
