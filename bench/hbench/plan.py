"""How long and how often: the full benchmark and the --quick smoke run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Plan:
    name: str
    reps: int = 3  # repetitions of each pgbench scenario and of the 10k idle scenario
    seconds: int = 15  # pgbench -T of a measured run
    warmup_seconds: int = 3  # unmeasured pgbench before a system's first run of a scenario
    scale: int = 10  # pgbench -i -s
    shared_buffers: str = "512MB"  # scale 10 is ~160 MB of tables and indexes
    max_connections: int = 200
    pool_size: int = 20
    clients: int = 16
    jobs: int = 2
    rate: int = 10_000  # -R scenario
    many_clients: int = 1000  # "c1000 through 20 backends"
    idle_clients: int = 10_000
    direct_idle_clients: int = 100  # PostgreSQL: backends, within max_connections
    huge_idle_clients: int = 100_000  # 0 = skip
    huge_pool_size: int = 100
    huge_timeout_s: float = 600.0  # bound on opening (and separately on checking) them all
    idle_sources: int = 8  # source addresses 127.0.0.2 .. for the idle clients
    pinned: bool = True
    quiet_cores: float = 0.20  # wait until other load is under this before each run
    interference_cores: float = 0.30  # repeat a run if other load went over this
    max_quiet_wait_s: float = 120.0
    quiet_sample_s: float = 1.0
    retries: int = 2  # repeats of a run that saw interference
    sampling_rate: float = 0.1  # pgbench --sampling-rate for saturating runs' latency logs
    scenarios: list[str] = field(default_factory=list)  # empty = all


def full_plan() -> Plan:
    return Plan("full")


def quick_plan() -> Plan:
    """One repetition of the main scenarios in under 3 minutes (CI smoke: fails only if a run
    errors, never on speed)."""
    return Plan("quick", reps=1, seconds=3, warmup_seconds=1, huge_idle_clients=0,
                pinned=False, max_quiet_wait_s=1.0, quiet_sample_s=0.5, retries=0,
                direct_idle_clients=50)
