"""Runners for real clients (psql, pgbench) that return parsed results. Every run has a timeout."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .proxy import ConnInfo
from .util import HarnessError, pg_bin, raise_nofile, set_pdeathsig

_ERR_LINE = re.compile(
    r"(?:^|: )(ERROR|FATAL|PANIC|WARNING):\s+(?:([0-9A-Z]{5}): )?(.*)$")


@dataclass
class PgError:
    severity: str
    sqlstate: Optional[str]
    message: str


def parse_errors(text: str) -> list[PgError]:
    """ERROR/FATAL lines from psql/pgbench output (SQLSTATE present with VERBOSITY=verbose)."""
    out = []
    for line in text.splitlines():
        m = _ERR_LINE.search(line)
        if m:
            out.append(PgError(m.group(1), m.group(2), m.group(3).strip()))
    return out


def client_env(ci: ConnInfo, env: Optional[dict]) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    e.update(ci.env())
    e.setdefault("PGCONNECT_TIMEOUT", "10")
    if env:
        e.update(env)
    return e


@dataclass
class PsqlResult:
    rc: int
    stdout: str
    stderr: str
    rows: list[list[str]]
    errors: list[PgError]
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not any(e.severity in ("ERROR", "FATAL") for e in self.errors)

    def scalar(self) -> str:
        if not self.rows or not self.rows[0]:
            raise AssertionError(f"psql returned no rows; stderr: {self.stderr}")
        return self.rows[0][0]


def psql(ci: ConnInfo, sql: Optional[str] = None, *, args: Sequence[str] = (),
         input: Optional[str] = None, timeout: float = 30, env: Optional[dict] = None,
         on_error_stop: bool = True) -> PsqlResult:
    """psql -X -A -t with '|' separators. `sql` goes through -c (repeatable via a list in
    args), `input` through stdin. Rows are split on '|'."""
    argv = [pg_bin("psql"), "-X", "-A", "-t", "-F", "|", "-v", "VERBOSITY=verbose"]
    if on_error_stop:
        argv += ["-v", "ON_ERROR_STOP=1"]
    if sql is not None:
        argv += ["-c", sql]
    argv += list(args)
    start = time.monotonic()
    try:
        cp = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                            env=client_env(ci, env), preexec_fn=set_pdeathsig)
    except subprocess.TimeoutExpired as e:
        raise HarnessError(f"psql timed out after {timeout}s: {argv}\n{e.stderr}")
    rows = [line.split("|") for line in cp.stdout.splitlines() if line != ""]
    return PsqlResult(cp.returncode, cp.stdout, cp.stderr, rows, parse_errors(cp.stderr),
                      time.monotonic() - start)


# ---------------------------------------------------------------------------------------------

_ABORT = re.compile(r"client (\d+) (?:script \d+ )?aborted")
_PROGRESS = re.compile(r"^progress: ([\d.]+) s, ([\d.]+) tps, lat ([\d.]+|NaN) ms"
                       r"(?: stddev ([\d.]+|NaN|nan))?(?:.*?, (\d+) failed)?")


@dataclass
class PgbenchResult:
    rc: int
    stdout: str
    stderr: str
    argv: list[str]
    clients: int = 0
    processed: int = 0
    failed: int = 0
    tps: float = 0.0
    latency_avg_ms: Optional[float] = None
    latency_stddev_ms: Optional[float] = None
    initial_connection_ms: Optional[float] = None
    aborted_clients: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # stderr lines that report an error
    progress: list[tuple[float, float, int]] = field(default_factory=list)  # (t, tps, failed)
    run_aborted: bool = False
    elapsed: float = 0.0

    @property
    def clean(self) -> bool:
        """Exit 0, something processed, 0 failed transactions, 0 error lines."""
        return (self.rc == 0 and self.processed > 0 and self.failed == 0 and not self.errors
                and not self.run_aborted)

    def summary(self) -> str:
        return (f"pgbench rc={self.rc} clients={self.clients} processed={self.processed} "
                f"failed={self.failed} tps={self.tps:.0f} aborted={len(self.aborted_clients)} "
                f"errors={len(self.errors)}" + (f" first error: {self.errors[0]}"
                                                if self.errors else ""))

    def describe(self, lines: int = 15) -> str:
        err = "\n".join(self.stderr.splitlines()[-lines:])
        return f"{self.summary()}\nargv: {' '.join(self.argv)}\nstderr tail:\n{err}"


def parse_pgbench(rc: int, stdout: str, stderr: str, argv: list[str]) -> PgbenchResult:
    r = PgbenchResult(rc, stdout, stderr, argv)

    def num(pattern: str, cast=float):
        m = re.search(pattern, stdout, re.M)
        return cast(m.group(1)) if m else None

    r.clients = num(r"^number of clients: (\d+)", int) or 0
    r.processed = num(r"^number of transactions actually processed: (\d+)", int) or 0
    r.failed = num(r"^number of failed transactions: (\d+)", int) or 0
    r.tps = num(r"^tps = ([\d.]+)") or 0.0
    r.latency_avg_ms = num(r"^latency average = ([\d.]+) ms")
    r.latency_stddev_ms = num(r"^latency stddev = ([\d.]+) ms")
    r.initial_connection_ms = num(r"^initial connection time = ([\d.]+) ms")
    r.run_aborted = "Run was aborted" in stdout or "Run was aborted" in stderr
    for line in stderr.splitlines():
        m = _PROGRESS.match(line)
        if m:
            failed = int(m.group(5)) if m.group(5) else 0
            r.progress.append((float(m.group(1)), float(m.group(2)), failed))
            continue
        m = _ABORT.search(line)
        if m:
            r.aborted_clients.append(int(m.group(1)))
        low = line.lower()
        if "error" in low or "fatal" in low or "aborted" in low or "could not" in low:
            r.errors.append(line.strip())
    return r


class PgbenchRun:
    """A pgbench started in the background; result() waits (bounded) and parses."""

    def __init__(self, argv: list[str], env: dict, timeout: float, nofile: int,
                 tmpfiles: list[str]) -> None:
        self.argv = argv
        self.timeout = timeout
        self._tmpfiles = tmpfiles
        self._start = time.monotonic()

        def preexec() -> None:
            raise_nofile(nofile)
            set_pdeathsig(9)

        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, preexec_fn=preexec,
                                     stdin=subprocess.DEVNULL)
        self._result: Optional[PgbenchResult] = None

    def result(self) -> PgbenchResult:
        if self._result is not None:
            return self._result
        remaining = max(1.0, self.timeout - (time.monotonic() - self._start))
        try:
            out, err = self.proc.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
            raise HarnessError(f"pgbench timed out after {self.timeout:.0f}s: "
                               f"{' '.join(self.argv)}\nstderr tail:\n"
                               + "\n".join((err or "").splitlines()[-20:]))
        finally:
            for f in self._tmpfiles:
                try:
                    os.unlink(f)
                except OSError:
                    pass
        self._result = parse_pgbench(self.proc.returncode, out, err, self.argv)
        self._result.elapsed = time.monotonic() - self._start
        return self._result

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


def pgbench(ci: ConnInfo, *, clients: int = 1, jobs: Optional[int] = None,
            seconds: Optional[float] = None, transactions: Optional[int] = None,
            select_only: bool = False, builtin: Optional[str] = None,
            script: Optional[str] = None, protocol: Optional[str] = None,
            rate: Optional[float] = None, progress: Optional[int] = None,
            connect_each: bool = False, extra: Sequence[str] = (),
            timeout: Optional[float] = None, nofile: int = 65536,
            env: Optional[dict] = None, background: bool = False):
    """Runs pgbench against `ci` (ulimit -n raised for big client counts). Returns a
    PgbenchResult, or a PgbenchRun if background=True. `script` is SQL text for -f."""
    argv = [pg_bin("pgbench"), "-n", "-c", str(clients),
            "-j", str(jobs or min(clients, os.cpu_count() or 2))]
    if seconds is not None:
        argv += ["-T", str(int(seconds))]
    if transactions is not None:
        argv += ["-t", str(transactions)]
    if select_only:
        argv += ["-S"]
    if builtin:
        argv += ["-b", builtin]
    tmpfiles = []
    if script is not None:
        fd, path = tempfile.mkstemp(prefix="helios-pgbench-", suffix=".sql")
        with os.fdopen(fd, "w") as f:
            f.write(script)
        os.chmod(path, 0o644)
        tmpfiles.append(path)
        argv += ["-f", path]
    if protocol:
        argv += ["-M", protocol]
    if rate:
        argv += ["-R", str(rate)]
    if progress:
        argv += ["-P", str(progress)]
    if connect_each:
        argv += ["-C"]
    argv += list(extra)
    argv += [ci.dbname]
    if timeout is None:
        timeout = (seconds or 30) + 60 + clients / 20
    run = PgbenchRun(argv, client_env(ci, env), timeout, nofile, tmpfiles)
    return run if background else run.result()


def pgbench_init(ci: ConnInfo, scale: int = 1, timeout: float = 600) -> None:
    """pgbench -i through `ci` (usually the cluster directly: PgCluster.pgbench_init)."""
    argv = [pg_bin("pgbench"), "-i", "-q", "-s", str(scale), ci.dbname]
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                        env=client_env(ci, None))
    if cp.returncode != 0:
        raise HarnessError(f"pgbench -i failed: {cp.stderr[-2000:]}")
