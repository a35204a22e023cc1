"""Small shared helpers: bounded subprocesses, free ports, waiting, file tails, the reaper."""

from __future__ import annotations

import json
import os
import pwd
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

PG_BIN = Path(os.environ.get("HELIOS_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_OS_USER = "postgres"


class HarnessError(RuntimeError):
    """Something in the test environment (not the code under test) failed."""


def pg_bin(name: str) -> str:
    path = PG_BIN / name
    if not path.exists():
        raise HarnessError(f"{path} not found: install postgresql-15 (scripts/setup)")
    return str(path)


def postgres_ids() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam(PG_OS_USER)
    except KeyError as e:
        raise HarnessError("no 'postgres' OS user: install postgresql (scripts/setup)") from e
    return pw.pw_uid, pw.pw_gid


def as_postgres_argv(argv: Sequence[str]) -> list[str]:
    """argv run as the postgres OS user (PostgreSQL refuses to run as root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_OS_USER, "--", *argv]
    return list(argv)


def drop_to_postgres() -> None:
    """preexec_fn: become the postgres user (no intermediate process, so signals reach it)."""
    if os.geteuid() == 0:
        uid, gid = postgres_ids()
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)


def raise_nofile(limit: int = 65536) -> None:
    """preexec_fn part: raise RLIMIT_NOFILE (root may raise the hard limit too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = limit
    if os.geteuid() == 0 and hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            pass
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def set_pdeathsig(sig: int = 9) -> None:
    """preexec_fn part: the child gets `sig` when the harness process dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except OSError:
        pass


def run(argv: Sequence[str], *, timeout: float, check: bool = True, input: Optional[str] = None,
        env: Optional[dict] = None, cwd: Optional[str] = None,
        preexec_fn: Optional[Callable[[], None]] = None) -> subprocess.CompletedProcess:
    """Runs argv with a timeout; on failure raises HarnessError with the output tail."""
    try:
        cp = subprocess.run(list(argv), input=input, capture_output=True, text=True,
                            timeout=timeout, env=env, cwd=cwd, preexec_fn=preexec_fn)
    except subprocess.TimeoutExpired as e:
        raise HarnessError(f"timed out after {timeout}s: {' '.join(argv)}\n"
                           f"stdout: {_tail_text(e.stdout)}\nstderr: {_tail_text(e.stderr)}")
    if check and cp.returncode != 0:
        raise HarnessError(f"exit {cp.returncode}: {' '.join(argv)}\n"
                           f"stdout: {_tail_text(cp.stdout)}\nstderr: {_tail_text(cp.stderr)}")
    return cp


def _tail_text(s, lines: int = 30) -> str:
    if s is None:
        return ""
    if isinstance(s, bytes):
        s = s.decode(errors="replace")
    return "\n".join(s.splitlines()[-lines:])


def tail(path: os.PathLike | str, lines: int = 40, max_bytes: int = 64 * 1024) -> str:
    """Last `lines` lines of a file ("" if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    return _tail_text(data, lines)


def free_port(host: str = "127.0.0.1", avoid: Iterable[int] = ()) -> int:
    """A TCP port that was free a moment ago (the kernel's pick; callers retry on EADDRINUSE)."""
    avoid = set(avoid)
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port
    raise HarnessError("no free TCP port found")


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(pred: Callable[[], object], *, timeout: float, interval: float = 0.05,
               what: str = "condition") -> object:
    """Polls pred() until truthy; returns its value or raises TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def chown_postgres(path: os.PathLike | str) -> None:
    if os.geteuid() == 0:
        uid, gid = postgres_ids()
        os.chown(path, uid, gid)


# ---------------------------------------------------------------------------------------------
# Reaper: a small side process that undoes what the harness started if the harness dies without
# cleaning up (SIGKILL, SIGTERM, crash). The harness registers actions and removes them when it
# cleans up itself; on EOF of its stdin the reaper runs whatever is still registered.

class _Reaper:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: Optional[subprocess.Popen] = None
        self._next = 0
        self._pid = os.getpid()

    def _ensure(self) -> subprocess.Popen:
        if self._proc is None or self._pid != os.getpid() or self._proc.poll() is not None:
            script = Path(__file__).with_name("reaper.py")
            self._proc = subprocess.Popen(
                [sys.executable, str(script)], stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, text=True, close_fds=True)
            self._pid = os.getpid()
        return self._proc

    def register(self, action: dict) -> int:
        with self._lock:
            proc = self._ensure()
            self._next += 1
            rid = self._next
            proc.stdin.write(f"add {rid} {json.dumps(action)}\n")
            proc.stdin.flush()
            return rid

    def unregister(self, rid: Optional[int]) -> None:
        if rid is None:
            return
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                return
            try:
                self._proc.stdin.write(f"del {rid}\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass


REAPER = _Reaper()
