"""ReplicaSet: a primary and streaming replicas made with `pg_basebackup -R`, for the primary/replica
tests (issue 17).

The primary is an ordinary PgCluster (roles, databases, pgbench tables) with replication
allowed over its unix socket (trust, as the harness's admin connection). Each replica is a
Replica: a PgCluster whose data directory comes from `pg_basebackup -R -X stream` of the
primary instead of initdb; it starts in hot standby on its own free port and socket dir and
streams from the primary's socket. Everything runs as the postgres OS user in temp dirs and is
cleaned up by the reaper like PgCluster.

    with ReplicaSet(replicas_count=2) as rs:
        rs.primary.port, [r.port for r in rs.replicas]
        rs.replicas[0].pause_replay(); rs.replicas[0].resume_replay()
        rs.replicas[1].promote()
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Optional

from .pgcluster import DEFAULT_DATABASES, PgCluster
from .util import HarnessError, as_postgres_argv, chown_postgres, pg_bin, run

# Settings the primary needs for streaming replicas (PostgreSQL 15 defaults already have
# wal_level = replica and max_wal_senders = 10; they are written out to be explicit).
PRIMARY_SETTINGS = {
    "wal_level": "replica",
    "max_wal_senders": 10,
    "wal_keep_size": "256MB",
    "hot_standby": True,
    "hot_standby_feedback": True,
    # The standbys report their replay position often: lag-based routing sees it quickly.
    "wal_receiver_status_interval": "1s",
}


@dataclass
class Replica(PgCluster):
    """A hot standby of `source`, made with pg_basebackup -R instead of initdb."""

    source: Optional[PgCluster] = None
    apply_delay_ms: int = 0  # recovery_min_apply_delay: a replica that lags on purpose

    def _initdb(self) -> None:
        if self.source is None or not self.source._started:
            raise HarnessError("Replica needs a started source cluster")
        self.sockdir.mkdir()
        chown_postgres(self.sockdir)
        run(as_postgres_argv([pg_bin("pg_basebackup"), "-D", str(self.datadir), "-R",
                              "-X", "stream", "--checkpoint=fast", "--no-sync",
                              "-h", str(self.source.sockdir), "-p", str(self.source.port),
                              "-U", "postgres"]), timeout=120)
        conf = {
            "unix_socket_directories": str(self.sockdir),
            "listen_addresses": self.host,
            "hot_standby": True,
            "recovery_min_apply_delay": f"{self.apply_delay_ms}ms",
        }
        conf.update(self.settings)
        # Later lines win: this block overrides what was copied from the primary's file.
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\n# helios test harness: replica\n")
            for k, v in conf.items():
                f.write(f"{k} = {_conf(v)}\n")

    def _setup_sql(self, databases: Iterable[str]) -> None:
        # Roles and databases come from the primary; wait until the standby accepts reads.
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.query("SELECT pg_is_in_recovery()")[0][0]:
                    return
            except Exception:  # noqa: BLE001 - still starting
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"replica on port {self.port} did not reach hot standby")
            time.sleep(0.1)

    # -- replication controls --------------------------------------------------------------------
    def in_recovery(self) -> bool:
        return bool(self.query("SELECT pg_is_in_recovery()")[0][0])

    def pause_replay(self) -> None:
        self.query("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.query("SELECT pg_wal_replay_resume()")

    def replay_lsn(self) -> str:
        return self.query("SELECT pg_last_wal_replay_lsn()::text")[0][0]

    def promote(self, wait: bool = True) -> None:
        """pg_ctl promote: the replica leaves recovery and becomes a primary."""
        argv = [pg_bin("pg_ctl"), "promote", "-D", str(self.datadir)]
        argv += ["-w", "-t", "60"] if wait else ["-W"]
        run(as_postgres_argv(argv), timeout=90)


@dataclass
class ReplicaSet:
    """A primary and `replicas` hot standbys streaming from it, on free ports."""

    replicas_count: int = 2
    apply_delay_ms: int = 0  # recovery_min_apply_delay on every replica
    settings: dict = field(default_factory=dict)  # extra postgresql.conf settings (all nodes)
    max_connections: int = 200
    databases: Iterable[str] = DEFAULT_DATABASES
    pgbench_scale: int = 0  # > 0: pgbench -i in bench before the replicas are made

    def __post_init__(self) -> None:
        self.primary: Optional[PgCluster] = None
        self.replicas: list[Replica] = []

    @property
    def nodes(self) -> list[PgCluster]:
        return [n for n in [self.primary, *self.replicas] if n is not None]

    def start(self) -> "ReplicaSet":
        try:
            self.primary = PgCluster(max_connections=self.max_connections,
                                     settings={**PRIMARY_SETTINGS, **self.settings})
            self.primary.start(self.databases)
            # Replication over the socket for the superuser only (the harness's own access).
            hba = self.primary.datadir / "pg_hba.conf"
            hba.write_text("local replication postgres trust\n" + hba.read_text())
            self.primary.query("SELECT pg_reload_conf()")
            if self.pgbench_scale > 0:
                self.primary.pgbench_init("bench", scale=self.pgbench_scale)
            for _ in range(self.replicas_count):
                r = Replica(source=self.primary, max_connections=self.max_connections,
                            apply_delay_ms=self.apply_delay_ms, settings=dict(self.settings))
                self.replicas.append(r)
                r.start()
            self.wait_caught_up()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Until every replica (not paused, in recovery) has replayed the primary's WAL position."""
        # The insert position: with synchronous_commit = off a commit may not be flushed yet.
        lsn = self.primary.query("SELECT pg_current_wal_insert_lsn()::text")[0][0]
        deadline = time.monotonic() + timeout
        for r in self.replicas:
            while True:
                ok = r.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0]
                if ok:
                    break
                if time.monotonic() > deadline:
                    raise HarnessError(f"replica on port {r.port} did not reach {lsn}")
                time.sleep(0.05)

    def stop(self) -> None:
        for r in self.replicas:
            r.stop()
        if self.primary is not None:
            self.primary.stop()

    def __enter__(self) -> "ReplicaSet":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _conf(v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, (int, float)):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


@contextmanager
def replica_set_with_table(replicas_count: int, table: str, **kwargs):
    """A started ReplicaSet whose primary has table `table` (id bigserial, v int) in database
    app, writable by everyone and replayed on every replica; stopped on exit."""
    s = ReplicaSet(replicas_count=replicas_count, **kwargs)
    s.start()
    try:
        s.primary.query(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, v int)", dbname="app")
        s.primary.query(f"GRANT ALL ON {table}, {table}_id_seq TO PUBLIC", dbname="app")
        s.wait_caught_up()
        yield s
    finally:
        s.stop()
