"""PgCluster: a throwaway PostgreSQL 15 cluster for tests, demo and bench.

initdb runs as the postgres OS user in a temp dir; the server listens on 127.0.0.1:<free port>
and on a unix socket in that dir. TCP logins use SCRAM (pg_hba), the unix socket is trust (for
the harness's own admin connection as `postgres`). Roles and databases are created for the
proxy tests (see ROLES). stop() = pg_ctl stop -m immediate + rmtree; the reaper does the same if
the process dies first, unless the cluster was started with persist=True (scripts/start-postgres).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from .scram import md5_password_hash, scram_verifier
from .util import (REAPER, HarnessError, as_postgres_argv, chown_postgres, free_port, pg_bin,
                   run, tail)


@dataclass(frozen=True)
class Role:
    name: str
    password: str
    scram_iterations: int = 4096  # 1 = a cheap verifier for connection storms
    md5: bool = False  # stored as an md5 hash (pg_hba md5 for this role)
    superuser: bool = False


SUPERUSER = "postgres"  # trust over the unix socket only
AUTH_USER = "helios_auth"  # the proxy's auth_query user: may only run helios.user_lookup()
APP_USER = "app"
BENCH_USER = "bench"  # 1-iteration SCRAM verifier: pgbench with 1000 clients logs in fast
MD5_USER = "app_md5"
TENANT_USERS = ("tenant_a", "tenant_b", "tenant_c")

ROLES: dict[str, Role] = {r.name: r for r in [
    Role(AUTH_USER, "helios_auth_pw"),
    Role(APP_USER, "app_pw"),
    Role(BENCH_USER, "bench_pw", scram_iterations=1),
    Role(MD5_USER, "app_md5_pw", md5=True),
    *[Role(t, f"{t}_pw", scram_iterations=1) for t in TENANT_USERS],
]}

# The SECURITY DEFINER lookup the proxy's auth user calls (what production users should do
# instead of making the auth user a superuser): the function `heliosctl auth-setup` installs.
# Zero rows for an unknown user. AUTH_QUERY reads only what PgBouncer (the stand-in) reads;
# HELIOS_AUTH_QUERY also returns VALID UNTIL and LOGIN, which HeliosProxy checks.
AUTH_QUERY = "SELECT usename, passwd FROM helios.user_lookup($1)"
HELIOS_AUTH_QUERY = "SELECT * FROM helios.user_lookup($1)"
_LOOKUP_SQL = f"""
CREATE SCHEMA IF NOT EXISTS helios;
CREATE OR REPLACE FUNCTION helios.user_lookup(i_username text)
  RETURNS TABLE (usename name, passwd text, valuntil timestamptz, canlogin boolean)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS
$$ SELECT a.rolname, a.rolpassword, a.rolvaliduntil, a.rolcanlogin
   FROM pg_catalog.pg_authid a WHERE a.rolname = i_username AND NOT a.rolsuper $$;
REVOKE ALL ON FUNCTION helios.user_lookup(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA helios TO {AUTH_USER};
GRANT EXECUTE ON FUNCTION helios.user_lookup(text) TO {AUTH_USER};
"""

DEFAULT_DATABASES = ("app", "bench")  # owners: app -> APP_USER, bench -> BENCH_USER


def _quote_ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _quote_literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


@dataclass
class PgCluster:
    """A PostgreSQL cluster in a temp dir. Use as a context manager or call start()/stop()."""

    max_connections: int = 200
    shared_buffers: str = "128MB"
    port: Optional[int] = None  # None = a free port
    base_dir: Optional[str] = None  # None = a new temp dir (removed on stop)
    persist: bool = False  # True: no reaper (scripts/start-postgres keeps it running)
    settings: dict = field(default_factory=dict)  # extra postgresql.conf settings
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self._started = False
        self._reaper_ids: list[int] = []
        self._owns_base = self.base_dir is None
        self.base: Optional[Path] = None

    # -- paths ---------------------------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def sockdir(self) -> Path:
        return self.base / "sock"

    @property
    def logfile(self) -> Path:
        return self.base / "postgres.log"

    @property
    def statefile(self) -> Path:
        return self.base / "state.json"

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, databases: Iterable[str] = DEFAULT_DATABASES) -> "PgCluster":
        if self._started:
            return self
        if self.base_dir is None:
            self.base = Path(tempfile.mkdtemp(prefix="helios-pg-", dir="/tmp"))
        else:
            self.base = Path(self.base_dir).resolve()
            self.base.mkdir(parents=True, exist_ok=True)
            if any(self.base.iterdir()):
                raise HarnessError(f"{self.base} is not empty")
        os.chmod(self.base, 0o755)
        chown_postgres(self.base)
        if not self.persist:
            if self._owns_base:
                self._reaper_ids.append(REAPER.register({"rmtree": str(self.base)}))
            self._reaper_ids.append(REAPER.register(
                {"pgstop": str(self.datadir), "pg_ctl": pg_bin("pg_ctl")}))
        try:
            self._initdb()
            self._start_server()
            self._setup_sql(databases)
        except BaseException:
            self.stop()
            raise
        self._write_state()
        return self

    def _initdb(self) -> None:
        self.sockdir.mkdir()
        chown_postgres(self.sockdir)
        run(as_postgres_argv([pg_bin("initdb"), "-D", str(self.datadir), "-U", SUPERUSER,
                              "-E", "UTF8", "--locale=C", "--no-sync", "--auth-local=trust",
                              "--auth-host=scram-sha-256", "--no-instructions"]), timeout=120)
        conf = {
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.sockdir),
            "max_connections": self.max_connections,
            "shared_buffers": self.shared_buffers,
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_wal_size": "2GB",
            "password_encryption": "scram-sha-256",
            "huge_pages": "off",
            "log_min_messages": "warning",
            "log_line_prefix": "%m [%p] %q%u@%d ",
            "log_connections": "off",
            "log_disconnections": "off",
        }
        conf.update(self.settings)
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\n# helios test harness\n")
            for k, v in conf.items():
                f.write(f"{k} = {_conf_value(v)}\n")
        hba = [
            "# helios test harness: trust over the socket (harness admin), SCRAM over TCP",
            "local all all trust",
            *[f"host all {r.name} 127.0.0.1/32 md5" for r in ROLES.values() if r.md5],
            *[f"host all {r.name} ::1/128 md5" for r in ROLES.values() if r.md5],
            "host all all 127.0.0.1/32 scram-sha-256",
            "host all all ::1/128 scram-sha-256",
        ]
        (self.datadir / "pg_hba.conf").write_text("\n".join(hba) + "\n")
        chown_postgres(self.datadir / "pg_hba.conf")

    def _start_server(self) -> None:
        fixed = self.port is not None
        for attempt in range(5):
            if not fixed:
                self.port = free_port(self.host)
            cp = run(as_postgres_argv([pg_bin("pg_ctl"), "start", "-D", str(self.datadir),
                                       "-l", str(self.logfile), "-w", "-t", "60",
                                       "-o", f"-p {self.port}"]), timeout=90, check=False)
            if cp.returncode == 0:
                self._started = True
                return
            log = tail(self.logfile, 20)
            if "Address already in use" in log and not fixed and attempt < 4:
                self.logfile.unlink(missing_ok=True)
                continue
            raise HarnessError(f"pg_ctl start failed (port {self.port}):\n{cp.stdout}\n"
                               f"{cp.stderr}\nlog:\n{log}")

    def _setup_sql(self, databases: Iterable[str]) -> None:
        with self.admin_connect("postgres") as c:
            for r in ROLES.values():
                c.execute(f"CREATE ROLE {_quote_ident(r.name)} LOGIN"
                          + (" SUPERUSER" if r.superuser else ""))
                c.execute(f"ALTER ROLE {_quote_ident(r.name)} PASSWORD "
                          + _quote_literal(self.stored_password(r)))
            for db in ("template1", "postgres"):
                with self.admin_connect(db) as d:
                    d.execute(_LOOKUP_SQL)
        for db in databases:
            self.create_database(db)

    @staticmethod
    def stored_password(r: Role) -> str:
        if r.md5:
            return md5_password_hash(r.name, r.password)
        return scram_verifier(r.password, r.scram_iterations)

    def create_database(self, name: str, owner: Optional[str] = None) -> None:
        owner = owner or {"app": APP_USER, "bench": BENCH_USER}.get(name, APP_USER)
        with self.admin_connect("postgres") as c:
            c.execute(f"CREATE DATABASE {_quote_ident(name)} OWNER {_quote_ident(owner)}")
        with self.admin_connect(name) as c:
            # Every test role may use every test database's public schema.
            c.execute(f"ALTER SCHEMA public OWNER TO {_quote_ident(owner)}")
            c.execute("GRANT ALL ON SCHEMA public TO PUBLIC")

    def pgbench_init(self, dbname: str = "bench", scale: int = 1, user: str = BENCH_USER,
                     timeout: float = 600) -> None:
        """pgbench -i over the socket as `user`; then every role may read/write the tables."""
        run([pg_bin("pgbench"), "-i", "-q", "-s", str(scale), "-h", str(self.sockdir),
             "-p", str(self.port), "-U", user, dbname], timeout=timeout)
        with self.admin_connect(dbname) as c:
            c.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                      "TO PUBLIC")
            c.execute("ANALYZE")

    def stop(self) -> None:
        if self.base is None:
            return
        if self.datadir.exists():
            run(as_postgres_argv([pg_bin("pg_ctl"), "stop", "-D", str(self.datadir), "-m",
                                  "immediate", "-w", "-t", "30"]), timeout=45, check=False)
        self._started = False
        if self._owns_base or not self.persist:
            shutil.rmtree(self.base, ignore_errors=True)
        for rid in self._reaper_ids:
            REAPER.unregister(rid)
        self._reaper_ids.clear()

    def __enter__(self) -> "PgCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- state file (scripts/start-postgres) -----------------------------------------------------
    def _write_state(self) -> None:
        self.statefile.write_text(json.dumps({"port": self.port, "host": self.host,
                                              "datadir": str(self.datadir),
                                              "sockdir": str(self.sockdir)}))

    @classmethod
    def stop_dir(cls, base_dir: str) -> None:
        """Stops a persisted cluster started in base_dir and removes the dir."""
        base = Path(base_dir).resolve()
        if not (base / "state.json").exists():
            raise HarnessError(f"{base}: no state.json, not a harness cluster dir")
        if (base / "data").exists():
            run(as_postgres_argv([pg_bin("pg_ctl"), "stop", "-D", str(base / "data"), "-m",
                                  "immediate", "-w", "-t", "30"]), timeout=45, check=False)
        shutil.rmtree(base, ignore_errors=True)

    # -- access --------------------------------------------------------------------------------
    def admin_connect(self, dbname: str = "postgres", **kw):
        """psycopg connection as the superuser over the unix socket, autocommit."""
        import psycopg

        return psycopg.connect(host=str(self.sockdir), port=self.port, user=SUPERUSER,
                               dbname=dbname, autocommit=True, connect_timeout=10, **kw)

    def query(self, sql: str, params=None, dbname: str = "postgres") -> list[tuple]:
        with self.admin_connect(dbname) as c:
            cur = c.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def conninfo(self, user: str = APP_USER, dbname: str = "app", **extra) -> dict:
        """Direct TCP connection parameters (as a client of PostgreSQL itself, SCRAM)."""
        d = {"host": self.host, "port": self.port, "user": user,
             "password": ROLES[user].password if user in ROLES else "", "dbname": dbname}
        d.update(extra)
        return d

    def backends(self, usename: Optional[str] = None) -> list[dict]:
        """Client backends in pg_stat_activity (not the harness's own admin connection)."""
        sql = ("SELECT pid, usename, datname, application_name, state, backend_xid::text, "
               "client_addr::text, query FROM pg_stat_activity "
               "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
        params: tuple = ()
        if usename is not None:
            sql += " AND usename = %s"
            params = (usename,)
        cols = ["pid", "usename", "datname", "application_name", "state", "backend_xid",
                "client_addr", "query"]
        return [dict(zip(cols, row)) for row in self.query(sql, params)]

    def terminate(self, pid: int) -> bool:
        return bool(self.query("SELECT pg_terminate_backend(%s)", (pid,))[0][0])

    def env(self) -> dict:
        """Shell environment for clients of this cluster (scripts/start-postgres prints it)."""
        e = {
            "HELIOS_PG_DIR": str(self.base), "PGHOST": self.host, "PGPORT": str(self.port),
            "HELIOS_PG_SOCKDIR": str(self.sockdir), "HELIOS_PG_DATADIR": str(self.datadir),
            "HELIOS_PG_LOG": str(self.logfile), "HELIOS_PG_SUPERUSER": SUPERUSER,
            "PGUSER": APP_USER, "PGPASSWORD": ROLES[APP_USER].password, "PGDATABASE": "app",
            "HELIOS_PG_AUTH_USER": AUTH_USER,
            "HELIOS_PG_AUTH_PASSWORD": ROLES[AUTH_USER].password,
            "HELIOS_PG_AUTH_QUERY": AUTH_QUERY,
            "HELIOS_PG_BENCH_USER": BENCH_USER,
            "HELIOS_PG_BENCH_PASSWORD": ROLES[BENCH_USER].password,
            "HELIOS_PG_BENCH_DB": "bench",
        }
        return e

    def wait_no_backends(self, usename: str, timeout: float = 10.0,
                         states: Optional[set] = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = [b for b in self.backends(usename) if states is None or b["state"] in states]
            if not rows:
                return
            time.sleep(0.05)
        raise TimeoutError(f"backends of {usename} still present after {timeout}s")


def _conf_value(v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, (int, float)):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"
