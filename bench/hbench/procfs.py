"""/proc readers: CPU time of processes and process trees, whole-machine busy time, memory (RSS,
PSS) and CPU affinity of every thread of a process. Times are in seconds, memory in bytes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcCpu:
    utime: float
    stime: float
    cutime: float  # waited-for children (PostgreSQL's exited backends land here)
    cstime: float

    @property
    def own(self) -> float:
        return self.utime + self.stime

    @property
    def with_children(self) -> float:
        return self.utime + self.stime + self.cutime + self.cstime


def _stat_fields(pid: int) -> Optional[list[str]]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    rest = text[text.rindex(")") + 2:].split()
    return rest  # rest[0] = state (field 3), rest[1] = ppid (field 4), ...


def proc_cpu(pid: int) -> Optional[ProcCpu]:
    """utime/stime/cutime/cstime of a process (all its threads), None if it is gone."""
    f = _stat_fields(pid)
    if f is None:
        return None
    # fields 14-17 (1-based) are utime, stime, cutime, cstime; rest[0] is field 3
    u, s, cu, cs = (int(x) / TICK for x in f[11:15])
    return ProcCpu(u, s, cu, cs)


def ppid_map() -> dict[int, int]:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            f = _stat_fields(int(d))
            if f is not None:
                out[int(d)] = int(f[1])
    return out


def descendants(roots: Iterable[int], parents: Optional[dict[int, int]] = None) -> set[int]:
    """roots and every live process below them."""
    parents = parents if parents is not None else ppid_map()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out: set[int] = set()
    stack = [r for r in roots if r in parents]
    while stack:
        p = stack.pop()
        if p in out:
            continue
        out.add(p)
        stack.extend(children.get(p, ()))
    return out


def tree_cpu(roots: Iterable[int], parents: Optional[dict[int, int]] = None) -> float:
    """CPU seconds of the trees under `roots`: every live process's own time plus what its
    exited, waited-for children used (cutime/cstime). Differences of two calls are exact for a
    tree whose processes are reaped inside it (PostgreSQL, the bench and its children)."""
    total = 0.0
    for pid in descendants(roots, parents):
        c = proc_cpu(pid)
        if c is not None:
            total += c.with_children
    return total


@dataclass(frozen=True)
class MachineCpu:
    busy: float  # seconds of all CPUs not idle and not iowait
    total: float

    def __sub__(self, other: "MachineCpu") -> "MachineCpu":
        return MachineCpu(self.busy - other.busy, self.total - other.total)


def machine_cpu() -> MachineCpu:
    """Whole-machine CPU seconds from /proc/stat (user nice system irq softirq steal count as
    busy; guest time is already inside user)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    vals = [int(x) for x in parts[1:]]
    user, nice, system, idle, iowait, irq, softirq = vals[:7]
    steal = vals[7] if len(vals) > 7 else 0
    busy = user + nice + system + irq + softirq + steal
    return MachineCpu(busy / TICK, (busy + idle + iowait) / TICK)


def rss_bytes(pid: int) -> Optional[int]:
    """VmRSS of a process (whole process, all threads)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def smaps_rollup(pid: int) -> dict[str, int]:
    """Rss, Pss, Shared_*, Private_* ... of a process in bytes ({} if it is gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    return out


def threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return []


def set_affinity(pid: int, cpus: set[int]) -> None:
    """Every thread of pid onto `cpus` (os.sched_setaffinity affects one thread)."""
    for tid in threads(pid):
        try:
            os.sched_setaffinity(tid, cpus)
        except (ProcessLookupError, OSError):
            pass


def set_tree_affinity(root: int, cpus: set[int]) -> None:
    """root, its live descendants and all their threads (children forked later inherit it from
    their parent's forking thread)."""
    for pid in descendants([root]):
        set_affinity(pid, cpus)


def loadavg() -> tuple[float, float, float]:
    a = Path("/proc/loadavg").read_text().split()
    return float(a[0]), float(a[1]), float(a[2])


CAP_SYS_RESOURCE = 24


def nofile_ceiling() -> int:
    """The most file descriptors a child of this process can get: the hard RLIMIT_NOFILE, or
    fs.nr_open when this process may raise hard limits (CAP_SYS_RESOURCE)."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            cap = int(line.split()[1], 16)
    if cap & (1 << CAP_SYS_RESOURCE):
        try:
            return int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            pass
    return hard if hard != resource.RLIM_INFINITY else 1 << 20
