"""BackendSampler: a thread that samples pg_stat_activity every `interval` seconds during a load
and records the peak number of client backends (total, by usename, by (usename,
application_name)) and by state. Uses its own superuser connection over the unix socket.

    with BackendSampler(cluster, interval=0.05) as s:
        pgbench(...)
    assert s.max_by_user.get("bench", 0) <= 20
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Optional

_SQL = ("SELECT usename, coalesce(application_name, ''), coalesce(state, ''), count(*) "
        "FROM pg_stat_activity WHERE backend_type = 'client backend' "
        "AND pid <> pg_backend_pid() GROUP BY 1, 2, 3")


class BackendSampler:
    def __init__(self, cluster, interval: float = 0.05, max_samples: int = 100_000) -> None:
        self.cluster = cluster
        self.interval = interval
        self.max_samples = max_samples
        self.samples = 0
        self.max_total = 0
        self.max_by_user: Counter = Counter()
        self.max_by_app: Counter = Counter()  # key: (usename, application_name)
        self.max_by_user_state: Counter = Counter()  # key: (usename, state)
        self.max_by_app_state: Counter = Counter()  # key: (usename, application_name, state)
        self.last: list[tuple] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()

    def start(self) -> "BackendSampler":
        self._thread = threading.Thread(target=self._run, name="backend-sampler", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("backend sampler did not connect within 10s")
        if self.errors:
            raise RuntimeError(f"backend sampler failed: {self.errors[0]}")
        return self

    def _run(self) -> None:
        try:
            conn = self.cluster.admin_connect("postgres")
        except Exception as e:  # noqa: BLE001 - reported through self.errors
            self.errors.append(str(e))
            self._ready.set()
            return
        self._ready.set()
        with conn:
            while not self._stop.is_set() and self.samples < self.max_samples:
                t0 = time.monotonic()
                try:
                    rows = conn.execute(_SQL).fetchall()
                except Exception as e:  # noqa: BLE001
                    self.errors.append(str(e))
                    break
                self._record(rows)
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))

    def _record(self, rows: list[tuple]) -> None:
        self.samples += 1
        self.last = rows
        by_user: Counter = Counter()
        by_app: Counter = Counter()
        by_state: Counter = Counter()
        by_app_state: Counter = Counter()
        total = 0
        for usename, app, state, n in rows:
            total += n
            by_user[usename] += n
            by_app[(usename, app)] += n
            by_state[(usename, state)] += n
            by_app_state[(usename, app, state)] += n
        self.max_total = max(self.max_total, total)
        for k, v in by_user.items():
            self.max_by_user[k] = max(self.max_by_user[k], v)
        for k, v in by_app.items():
            self.max_by_app[k] = max(self.max_by_app[k], v)
        for k, v in by_state.items():
            self.max_by_user_state[k] = max(self.max_by_user_state[k], v)
        for k, v in by_app_state.items():
            self.max_by_app_state[k] = max(self.max_by_app_state[k], v)

    def stop(self) -> "BackendSampler":
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        return self

    def __enter__(self) -> "BackendSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def summary(self) -> str:
        return (f"{self.samples} samples every {self.interval * 1000:.0f} ms, peak total "
                f"{self.max_total}, peak by user {dict(self.max_by_user)}")
