"""Python side of bench/kernel/kernel_tool.cpp, shared by bench/kernel/kernel_bench.py and
tests/integration/test_kernel_*.py: builds the tool against a build directory's
libhelios_core.a and runs its `bypass` and `pgrelay` modes as context managers."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]

# Exit code of kernel_tool when the kernel or the process lacks a feature (is_missing_feature).
MISSING_FEATURE = 3


class KernelToolUnavailable(RuntimeError):
    """The kernel (or our privileges) cannot do what was asked: callers skip."""


def build_dir() -> Path:
    b = Path(os.environ.get("HELIOS_BUILD_DIR", "build"))
    return b if b.is_absolute() else ROOT / b


def build_tool() -> Path:
    """Compiles kernel_tool.cpp (once; again when the source or the library changes)."""
    build = build_dir()
    src = ROOT / "bench/kernel/kernel_tool.cpp"
    lib = build / "libhelios_core.a"
    tool = build / "bench-kernel" / "kernel_tool"
    if not lib.exists():
        raise FileNotFoundError(f"{lib} missing: build helios_core in {build} first")
    tool.parent.mkdir(parents=True, exist_ok=True)
    if tool.exists() and tool.stat().st_mtime > max(src.stat().st_mtime, lib.stat().st_mtime):
        return tool
    cmd = ["g++", "-std=c++20", "-O2", "-DSPDLOG_COMPILED_LIB", "-DSPDLOG_FMT_EXTERNAL",
           "-DSPDLOG_SHARED_LIB", "-DFMT_SHARED", f"-I{ROOT}/userspace", f"-I{ROOT}/include",
           f"-I{build}/generated", str(src), str(lib), "-lbpf", "-lxdp", "-luring", "-lspdlog",
           "-lfmt", "-lpthread", "-o", str(tool) + ".tmp"]
    subprocess.run(cmd, check=True)
    os.replace(str(tool) + ".tmp", tool)
    return tool


def _die_with_parent() -> None:
    """In the child: SIGTERM when the Python process dies (the tool then detaches via RAII)."""
    import ctypes
    import signal
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Tool:
    """A kernel_tool process that prints one JSON line when ready and its counters when its
    stdin closes."""

    ready_event = ""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.final: dict = {}
        self.proc: Optional[subprocess.Popen] = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, preexec_fn=_die_with_parent)
        line = self.proc.stdout.readline()
        d = json.loads(line) if line.strip() else {"event": "error", "message": "no output"}
        if d.get("event") != self.ready_event:
            self.proc.kill()
            self.proc.wait(10)
            if self.proc.returncode == MISSING_FEATURE:
                raise KernelToolUnavailable(d.get("message", str(d)))
            raise RuntimeError(f"{self.argv[1]} did not start: {d}")
        self.started = d
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
            out = self.proc.stdout.read()
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return
        for ln in out.splitlines():
            if ln.strip():
                self.final = json.loads(ln)


class Bypass(_Tool):
    """The same-host bypass attached while inside; .final["stats"] has its counters."""

    ready_event = "attached"

    def __init__(self, endpoints: list[str], instance: str, cgroup: str = ""):
        argv = [str(build_tool()), "bypass", "--instance", instance]
        for e in endpoints:
            argv += ["--endpoint", e]
        if cgroup:
            argv += ["--cgroup", cgroup]
        super().__init__(argv)

    @property
    def stats(self) -> dict:
        return self.final.get("stats", {})


class PgRelay(_Tool):
    """A session relay in front of PostgreSQL on 127.0.0.1:port: path "splice" (kernel) or
    "user" (copy loop)."""

    ready_event = "listening"

    def __init__(self, upstream: str, port: int, path: str, sndbuf: int = 0):
        self.port = port
        super().__init__([str(build_tool()), "pgrelay", "--path", path, "--listen", str(port),
                          "--upstream", upstream, "--sndbuf", str(sndbuf)])
