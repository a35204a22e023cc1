#!/usr/bin/python3
"""Idle-client opener: N real PostgreSQL logins (startup + SCRAM-SHA-256) held open and idle.

One asyncio process with raw non-blocking sockets (epoll) and a Protocol state machine per
connection; no psql or libpq. Run by bench/hbench/idle.py as a child process and driven over
stdin/stdout with one JSON object per line:

  start:         {"event": "opened", "ok": N, "errors": E, "error_samples": {...}, "seconds": T}
  stdin "check [INFLIGHT [SECONDS]]": every open client runs `SELECT 1` (at most INFLIGHT at a
                 time; none starts after SECONDS)
                 -> {"event": "checked", "ok": .., "errors": .., "lost": .., "seconds": ..}
  stdin "status" -> {"event": "status", "open": .., "lost": .., "lost_samples": {...}}
  stdin "close" or EOF: Terminate + close every client -> {"event": "closed", ...}, exit 0

Connections come from several source addresses (--sources 127.0.0.2,127.0.0.3,...) so that
100,000 clients do not exhaust the ephemeral ports of one (source, destination) pair.

  idle_clients.py --host H --port P --user U --password PW --dbname D --count N
                  [--sources A,B,..] [--application-name bench_idle]
                  [--concurrency 200] [--login-timeout 30] [--timeout 600]
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import json
import os
import socket
import struct
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from harness.scram import ScramClient, ScramError  # noqa: E402
from harness.wire import message, query_message, startup_packet, terminate_message  # noqa: E402

AUTH_OK, AUTH_SASL, AUTH_SASL_CONTINUE, AUTH_SASL_FINAL = 0, 10, 11, 12


class State(enum.Enum):
    CONNECTING = 1
    AUTHENTICATING = 2  # startup sent; SASL exchange until AuthenticationOk
    STARTING = 3  # AuthenticationOk seen; ParameterStatus/BackendKeyData until ReadyForQuery
    IDLE = 4
    QUERYING = 5
    CLOSED = 6


class IdleClient(asyncio.Protocol):
    """One client connection. Every transition goes through _to(); the futures report the end
    of the login and of each query to the driver."""

    def __init__(self, user: str, password: str, dbname: str, app: str, loop) -> None:
        self.user, self.password, self.dbname, self.app = user, password, dbname, app
        self.state = State.CONNECTING
        self.transport: Optional[asyncio.Transport] = None
        self.buf = bytearray()
        self.scram: Optional[ScramClient] = None
        self.ready = loop.create_future()  # login: True, or an exception
        self.query_done: Optional[asyncio.Future] = None
        self.query_error: Optional[str] = None
        self.lost_reason: Optional[str] = None

    # -- transitions -------------------------------------------------------------------------
    def _to(self, state: State) -> None:
        self.state = state

    def _fail(self, reason: str) -> None:
        """Protocol error or ErrorResponse outside a query: the connection is of no further use."""
        prev = self.state
        self._to(State.CLOSED)
        if not self.ready.done():
            self.ready.set_exception(RuntimeError(reason))
        elif prev in (State.IDLE, State.QUERYING):
            self.lost_reason = self.lost_reason or reason
        if self.query_done is not None and not self.query_done.done():
            self.query_done.set_result(reason)
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._to(State.AUTHENTICATING)
        params = {"user": self.user, "database": self.dbname}
        if self.app:
            params["application_name"] = self.app
        transport.write(startup_packet(params))

    def connection_lost(self, exc) -> None:
        if self.state != State.CLOSED:
            self._fail(f"connection lost in {self.state.name}: {exc or 'EOF'}")

    def data_received(self, data: bytes) -> None:
        self.buf += data
        pos = 0
        n = len(self.buf)
        while n - pos >= 5:
            kind = self.buf[pos]
            (length,) = struct.unpack_from("!I", self.buf, pos + 1)
            if length < 4:
                self._fail(f"bad message length {length}")
                return
            if n - pos - 1 < length:
                break
            payload = bytes(self.buf[pos + 5:pos + 1 + length])
            pos += 1 + length
            self._on_message(kind, payload)
            if self.state == State.CLOSED:
                return
        del self.buf[:pos]

    # -- protocol ----------------------------------------------------------------------------
    def _on_message(self, kind: int, payload: bytes) -> None:
        st = self.state
        if kind == ord("E"):
            fields = _error_fields(payload)
            reason = f"{fields.get('C', '?')} {fields.get('M', '')}"
            if st == State.QUERYING:
                self.query_error = reason  # ReadyForQuery follows
                return
            self._fail(reason)
            return
        if kind == ord("N") or kind == ord("S"):
            return  # notices; ParameterStatus (also async ones while idle)
        if st == State.AUTHENTICATING:
            if kind != ord("R"):
                self._fail(f"unexpected {chr(kind)!r} during authentication")
                return
            self._on_auth(payload)
        elif st == State.STARTING:
            if kind == ord("K"):
                return
            if kind == ord("Z"):
                self._to(State.IDLE)
                self.ready.set_result(True)
                self.scram = None
                return
            self._fail(f"unexpected {chr(kind)!r} after AuthenticationOk")
        elif st == State.QUERYING:
            if kind == ord("Z"):
                self._to(State.IDLE)
                self.query_done.set_result(self.query_error)
                self.query_error = None
            # T, D, C: the result of SELECT 1
        elif st == State.IDLE:
            self._fail(f"unexpected {chr(kind)!r} while idle")
        else:
            self._fail(f"message {chr(kind)!r} in state {st.name}")

    def _on_auth(self, payload: bytes) -> None:
        (code,) = struct.unpack_from("!I", payload)
        try:
            if code == AUTH_OK:
                self._to(State.STARTING)
            elif code == AUTH_SASL:
                mechs = [m.decode() for m in payload[4:].split(b"\0") if m]
                if "SCRAM-SHA-256" not in mechs:
                    self._fail(f"no SCRAM-SHA-256 in {mechs}")
                    return
                self.scram = ScramClient(self.password)
                first = self.scram.first_message()
                self.transport.write(message(b"p", b"SCRAM-SHA-256\0"
                                             + struct.pack("!I", len(first)) + first))
            elif code == AUTH_SASL_CONTINUE:
                self.transport.write(message(b"p", self.scram.final_message(payload[4:])))
            elif code == AUTH_SASL_FINAL:
                self.scram.verify_server_final(payload[4:])
            else:
                self._fail(f"unsupported authentication request {code} (want SCRAM)")
        except (ScramError, ValueError, AttributeError) as e:
            self._fail(f"SCRAM: {e}")

    # -- driver API --------------------------------------------------------------------------
    def query(self, loop) -> asyncio.Future:
        self.query_done = loop.create_future()
        if self.state != State.IDLE:
            self.query_done.set_result(self.lost_reason or f"not idle ({self.state.name})")
            return self.query_done
        self._to(State.QUERYING)
        self.transport.write(query_message("SELECT 1"))
        return self.query_done

    def close(self) -> None:
        if self.transport is not None and self.state != State.CLOSED:
            self._to(State.CLOSED)
            try:
                self.transport.write(terminate_message())
            finally:
                self.transport.close()


def _error_fields(payload: bytes) -> dict:
    out = {}
    for part in payload.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode(errors="replace")
    return out


def _short(reason: str) -> str:
    return reason if len(reason) <= 120 else reason[:117] + "..."


class Driver:
    def __init__(self, args) -> None:
        self.args = args
        self.clients: list[IdleClient] = []
        self.errors: Counter = Counter()

    async def _open_one(self, loop, i: int) -> None:
        a = self.args
        src = a.sources[i % len(a.sources)] if a.sources else None
        proto = IdleClient(a.user, a.password, a.dbname, a.application_name, loop)
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: proto, a.host, a.port,
                                       local_addr=(src, 0) if src else None),
                a.connect_timeout)
            await asyncio.wait_for(proto.ready, a.login_timeout)
        except asyncio.TimeoutError:
            state = proto.state
            proto._fail("timeout")
            self.errors[_short(f"timed out in {state.name} (connect "
                               f"{a.connect_timeout:.0f}s, login {a.login_timeout:.0f}s)")] += 1
            return
        except (OSError, RuntimeError) as e:
            proto._fail(str(e))
            self.errors[_short(f"{type(e).__name__}: {e}")] += 1
            return
        self.clients.append(proto)

    async def open_all(self, loop) -> dict:
        """Opens --count clients with --concurrency logins in flight. No new login starts after
        --timeout; one in flight then ends within --login-timeout, so this is bounded."""
        t0 = time.monotonic()
        deadline = t0 + self.args.timeout
        next_i = 0
        count = self.args.count
        timed_out = False

        async def worker() -> None:
            nonlocal next_i, timed_out
            while next_i < count:
                if time.monotonic() >= deadline:
                    timed_out = True
                    return
                i = next_i
                next_i += 1
                await self._open_one(loop, i)

        await asyncio.gather(*(worker() for _ in range(min(self.args.concurrency, count))))
        if timed_out:
            self.errors[f"not attempted: opening took longer than {self.args.timeout:.0f}s"] += \
                count - next_i
        return {"event": "opened", "ok": len(self.clients), "errors": sum(self.errors.values()),
                "error_samples": dict(self.errors.most_common(5)), "timed_out": timed_out,
                "seconds": round(time.monotonic() - t0, 3)}

    def lost(self) -> list[IdleClient]:
        return [c for c in self.clients if c.state == State.CLOSED]

    def status(self) -> dict:
        lost = self.lost()
        reasons = Counter(_short(c.lost_reason or "?") for c in lost)
        return {"event": "status", "open": len(self.clients) - len(lost), "lost": len(lost),
                "lost_samples": dict(reasons.most_common(5))}

    async def check(self, loop, inflight: int, timeout: float) -> dict:
        """Every client that is still open runs SELECT 1 (bounded concurrency). None starts
        after `timeout` seconds (those count as errors)."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        ok, errors = 0, Counter()
        sem = asyncio.Semaphore(inflight)
        lost_before = len(self.lost())

        async def one(c: IdleClient) -> None:
            nonlocal ok
            async with sem:
                if c.state == State.CLOSED:
                    return
                if time.monotonic() >= deadline:
                    errors[f"not attempted: checking took longer than {timeout:.0f}s"] += 1
                    return
                try:
                    err = await asyncio.wait_for(c.query(loop), self.args.login_timeout)
                except asyncio.TimeoutError:
                    err = "SELECT 1 timed out"
                if err is None:
                    ok += 1
                else:
                    errors[_short(err)] += 1

        await asyncio.gather(*(one(c) for c in self.clients))
        return {"event": "checked", "ok": ok, "errors": sum(errors.values()),
                "error_samples": dict(errors.most_common(5)), "lost_before": lost_before,
                "seconds": round(time.monotonic() - t0, 3)}

    def close_all(self) -> dict:
        for c in self.clients:
            c.close()
        return {"event": "closed", "closed": len(self.clients)}


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def amain(args) -> int:
    loop = asyncio.get_running_loop()
    d = Driver(args)
    emit(await d.open_all(loop))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "close":
            break
        cmd, *rest = line.split()
        if cmd == "status":
            emit(d.status())
        elif cmd == "check":
            emit(await d.check(loop, int(rest[0]) if rest else 1000,
                               float(rest[1]) if len(rest) > 1 else args.timeout))
        else:
            emit({"event": "error", "message": f"unknown command {cmd!r}"})
    emit(d.close_all())
    await asyncio.sleep(0.2)  # let the transports flush Terminate
    return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", default=os.environ.get("PGPASSWORD", ""))
    p.add_argument("--dbname", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--application-name", default="bench_idle")
    p.add_argument("--sources", default="", help="comma-separated source IPs (round robin)")
    p.add_argument("--concurrency", type=int, default=200, help="logins in flight")
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument("--login-timeout", type=float, default=30.0)
    p.add_argument("--timeout", type=float, default=600.0, help="bound on opening them all")
    a = p.parse_args(argv)
    a.sources = [s for s in a.sources.split(",") if s]
    return a


if __name__ == "__main__":
    sys.exit(asyncio.run(amain(parse_args())))
