"""Noise control: how much CPU the rest of the machine uses while the bench runs.

"ours" = the bench process tree (the bench itself, pgbench, the proxies, the idle-client
opener; exited children through cutime/cstime) plus the PostgreSQL postmaster's tree.
"other" = whole-machine busy time (/proc/stat) minus ours: other users' processes, and kernel
threads (kworkers, ksoftirqd) that do no work for a process it is charged to.

- wait_quiet(): before a run, wait until other load stays under `quiet` cores (0.2 = 20% of
  one core) for a sample, bounded by `max_wait`.
- Monitor: during a run, samples other load every `interval` seconds; interfered() says
  whether any sample went over `limit` cores (0.3), so the caller repeats the run.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import procfs


@dataclass
class CpuSnapshot:
    t: float
    machine: procfs.MachineCpu
    ours: float

    @staticmethod
    def take(roots: list[int]) -> "CpuSnapshot":
        parents = procfs.ppid_map()
        return CpuSnapshot(time.monotonic(), procfs.machine_cpu(),
                           procfs.tree_cpu(roots, parents))

    def other_cores(self, before: "CpuSnapshot") -> float:
        """Other load between `before` and self, in cores (1.0 = one core busy)."""
        dt = self.t - before.t
        if dt <= 0:
            return 0.0
        other = (self.machine.busy - before.machine.busy) - (self.ours - before.ours)
        return max(0.0, other / dt)

    def machine_cores(self, before: "CpuSnapshot") -> float:
        dt = self.t - before.t
        return (self.machine.busy - before.machine.busy) / dt if dt > 0 else 0.0


@dataclass
class QuietResult:
    waited_s: float
    other_cores: float  # in the last sample
    quiet: bool  # False: max_wait passed and the machine never got quiet


def wait_quiet(roots_fn: Callable[[], list[int]], *, quiet: float, max_wait: float,
               sample: float = 1.0, log: Optional[Callable[[str], None]] = None) -> QuietResult:
    t0 = time.monotonic()
    last = 0.0
    announced = False
    while True:
        a = CpuSnapshot.take(roots_fn())
        time.sleep(sample)
        b = CpuSnapshot.take(roots_fn())
        last = b.other_cores(a)
        waited = time.monotonic() - t0
        if last < quiet:
            return QuietResult(waited, last, True)
        if waited >= max_wait:
            if log:
                log(f"machine not quiet after {waited:.0f}s (other load {last:.2f} cores); "
                    "running anyway, the run is flagged")
            return QuietResult(waited, last, False)
        if log and not announced:
            log(f"waiting for a quiet machine (other load {last:.2f} cores > {quiet:.2f}, "
                f"up to {max_wait:.0f}s)")
            announced = True


@dataclass
class Monitor:
    """Samples other load in a thread from start() to stop()."""

    roots_fn: Callable[[], list[int]]
    interval: float = 1.0
    samples: list[float] = field(default_factory=list)
    machine_samples: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.first: Optional[CpuSnapshot] = None
        self.last: Optional[CpuSnapshot] = None

    def start(self) -> "Monitor":
        self.first = CpuSnapshot.take(self.roots_fn())
        self._thread = threading.Thread(target=self._run, name="noise-monitor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        prev = self.first
        while not self._stop.wait(self.interval):
            cur = CpuSnapshot.take(self.roots_fn())
            self.samples.append(cur.other_cores(prev))
            self.machine_samples.append(cur.machine_cores(prev))
            prev = cur

    def stop(self) -> "Monitor":
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.last = CpuSnapshot.take(self.roots_fn())
        return self

    @property
    def other_avg(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return self.last.other_cores(self.first)

    @property
    def other_max(self) -> float:
        return max(self.samples, default=self.other_avg)

    def interfered(self, limit: float) -> bool:
        return self.other_max > limit


def bench_roots(postmaster_pid: Optional[int]) -> list[int]:
    roots = [os.getpid()]
    if postmaster_pid:
        roots.append(postmaster_pid)
    return roots
