"""A throwaway redis-server (Debian's) on a free loopback port, for [fleet] tests and the demo.

    with RedisServer() as r:
        r.url            # "redis://127.0.0.1:PORT"
        r.stop(); r.start()   # an outage: same port, empty data (no persistence)
        r.cli("KEYS", "*")

No persistence, no config file; killed by the reaper if the Python process dies.
"""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

from .util import REAPER, HarnessError, free_port, set_pdeathsig


def redis_available() -> Optional[str]:
    """None when redis-server is installed, else why not (tests skip with it)."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server; scripts/setup does)"
    return None


class RedisServer:
    def __init__(self, port: Optional[int] = None) -> None:
        self.port = port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="helios-redis-", dir="/tmp"))
        self._rm_id = REAPER.register({"rmtree": str(self.workdir)})
        self._kill_id: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        log = open(self.workdir / "redis.log", "ab")
        try:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                 "--protected-mode", "no"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=set_pdeathsig,
                close_fds=True)
        finally:
            log.close()
        self._kill_id = REAPER.register({"kill": self.proc.pid, "sig": 9})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError("redis-server exited: " +
                                   (self.workdir / "redis.log").read_text()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise HarnessError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        REAPER.unregister(self._kill_id)
        self._kill_id = None

    def cli(self, *args: str) -> str:
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                           text=True, timeout=10)
        return r.stdout

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        REAPER.unregister(self._rm_id)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()
