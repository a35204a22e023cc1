"""A raw PostgreSQL v3 wire client for tests that must see exact bytes: bad startup packets,
SSLRequest/GSSENCRequest answers, ErrorResponse fields, and a full login (SCRAM/md5/trust) on
the same socket. Every read has a timeout.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Optional

from .scram import ScramClient, md5_response

PROTOCOL_3 = 196608
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102


def startup_packet(params: dict, version: int = PROTOCOL_3) -> bytes:
    body = struct.pack("!I", version)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ssl_request() -> bytes:
    return struct.pack("!II", 8, SSL_REQUEST_CODE)


def gssenc_request() -> bytes:
    return struct.pack("!II", 8, GSSENC_REQUEST_CODE)


def message(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def query_message(sql: str) -> bytes:
    return message(b"Q", sql.encode() + b"\0")


def terminate_message() -> bytes:
    return message(b"X")


@dataclass
class Message:
    kind: bytes
    payload: bytes

    def fields(self) -> dict:
        """ErrorResponse/NoticeResponse fields: {'S': 'FATAL', 'C': '08P01', 'M': ...}."""
        out = {}
        for part in self.payload.split(b"\0"):
            if part:
                out[chr(part[0])] = part[1:].decode(errors="replace")
        return out

    @property
    def sqlstate(self) -> Optional[str]:
        return self.fields().get("C") if self.kind in (b"E", b"N") else None

    def __repr__(self) -> str:
        if self.kind in (b"E", b"N"):
            return f"Message({self.kind!r}, {self.fields()})"
        return f"Message({self.kind!r}, {self.payload[:60]!r})"


def parse_messages(data: bytes) -> tuple[list[Message], bytes]:
    """Backend messages in `data` and the unparsed remainder (an incomplete message)."""
    msgs = []
    pos = 0
    while len(data) - pos >= 5:
        kind = data[pos:pos + 1]
        (length,) = struct.unpack("!I", data[pos + 1:pos + 5])
        if length < 4 or len(data) - pos - 1 < length:
            break
        msgs.append(Message(kind, data[pos + 5:pos + 1 + length]))
        pos += 1 + length
    return msgs, data[pos:]


@dataclass
class Exchange:
    """What came back on a raw connection until it closed (or the deadline)."""

    raw: bytes = b""
    messages: list[Message] = field(default_factory=list)
    remainder: bytes = b""
    closed: bool = False  # the peer closed (EOF or reset) before the deadline
    reset: bool = False
    elapsed: float = 0.0

    @property
    def errors(self) -> list[Message]:
        return [m for m in self.messages if m.kind == b"E"]

    def describe(self) -> str:
        return (f"closed={self.closed} reset={self.reset} after {self.elapsed:.2f}s, "
                f"{len(self.raw)} bytes: {self.messages} remainder={self.remainder[:40]!r}")


def data_row_values(payload: bytes) -> list:
    """A DataRow's columns as text (None for NULL)."""
    (n,) = struct.unpack("!H", payload[:2])
    pos, row = 2, []
    for _ in range(n):
        (ln,) = struct.unpack("!i", payload[pos:pos + 4])
        pos += 4
        row.append(None if ln < 0 else payload[pos:pos + ln].decode())
        pos += max(ln, 0)
    return row


class RawConn:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.t0 = time.monotonic()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawConn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def read_byte(self, timeout: float = 5.0) -> bytes:
        """One byte (the answer to SSLRequest/GSSENCRequest); b"" on EOF."""
        if self.buf:
            b, self.buf = self.buf[:1], self.buf[1:]
            return b
        self.sock.settimeout(timeout)
        return self.sock.recv(1)

    def read_until_close(self, timeout: float) -> Exchange:
        """Reads everything until EOF/reset or `timeout` seconds; parses backend messages."""
        ex = Exchange()
        deadline = time.monotonic() + timeout
        data = self.buf
        self.buf = b""
        start = time.monotonic()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                ex.closed = ex.reset = True
                break
            if not chunk:
                ex.closed = True
                break
            data += chunk
        ex.elapsed = time.monotonic() - start
        ex.raw = data
        ex.messages, ex.remainder = parse_messages(data)
        return ex

    def read_response(self, timeout: float = 10.0) -> Exchange:
        """Messages up to and including ReadyForQuery, or until the peer closes / timeout."""
        ex = Exchange()
        start = time.monotonic()
        deadline = start + timeout
        while True:
            try:
                m = self.read_message(max(0.01, deadline - time.monotonic()))
            except (TimeoutError, socket.timeout):
                break
            except ConnectionResetError:
                ex.closed = ex.reset = True
                break
            except ConnectionError:
                ex.closed = True
                break
            ex.messages.append(m)
            if m.kind == b"Z":
                break
        ex.elapsed = time.monotonic() - start
        ex.remainder = self.buf
        return ex

    def read_message(self, timeout: float = 10.0) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            msgs, rest = parse_messages(self.buf)
            if msgs:
                m = msgs[0]
                self.buf = self.buf[5 + len(m.payload):]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete message within {timeout}s (have {self.buf!r})")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed (pending {self.buf!r})")
            self.buf += chunk

    def login(self, user: str, password: str, database: str, extra: Optional[dict] = None,
              timeout: float = 10.0, send_startup: bool = True) -> dict:
        """Startup + authentication until ReadyForQuery. Returns ParameterStatus values plus
        '_backend_key' (pid, secret) and '_txn_status'. Raises LoginError with the
        ErrorResponse fields. send_startup=False: the caller already sent the startup packet."""
        params = {"user": user, "database": database}
        params.update(extra or {})
        if send_startup:
            self.send(startup_packet(params))
        scram: Optional[ScramClient] = None
        status: dict = {}
        while True:
            m = self.read_message(timeout)
            if m.kind == b"E":
                raise LoginError(m.fields())
            if m.kind == b"R":
                (code,) = struct.unpack("!I", m.payload[:4])
                if code == 0:
                    continue
                if code == 3:  # cleartext
                    self.send(message(b"p", password.encode() + b"\0"))
                elif code == 5:  # md5
                    self.send(message(b"p", md5_response(user, password, m.payload[4:8]).encode()
                                      + b"\0"))
                elif code == 10:  # SASL: mechanism list
                    mechs = [x.decode() for x in m.payload[4:].split(b"\0") if x]
                    if "SCRAM-SHA-256" not in mechs:
                        raise LoginError({"M": f"no SCRAM-SHA-256 in {mechs}"})
                    scram = ScramClient(password)
                    first = scram.first_message()
                    self.send(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first))
                                      + first))
                elif code == 11:  # SASLContinue
                    self.send(message(b"p", scram.final_message(m.payload[4:])))
                elif code == 12:  # SASLFinal
                    scram.verify_server_final(m.payload[4:])
                else:
                    raise LoginError({"M": f"unsupported auth request {code}"})
            elif m.kind == b"S":
                k, v, _ = m.payload.split(b"\0", 2)
                status[k.decode()] = v.decode()
            elif m.kind == b"K":
                status["_backend_key"] = struct.unpack("!II", m.payload[:8])
            elif m.kind == b"Z":
                status["_txn_status"] = m.payload.decode()
                return status
            elif m.kind == b"N":
                continue
            else:
                raise LoginError({"M": f"unexpected message {m!r} during login"})

    def read_until_ready(self, timeout: float = 10.0) -> list[Message]:
        """Every message up to and including the next ReadyForQuery."""
        msgs = []
        while True:
            m = self.read_message(timeout)
            msgs.append(m)
            if m.kind == b"Z":
                return msgs

    def simple_query(self, sql: str, timeout: float = 10.0) -> tuple[list[list], list[Message]]:
        """Runs a simple Query; returns (rows as text, error messages) after ReadyForQuery."""
        self.send(query_message(sql))
        rows, errors = [], []
        while True:
            m = self.read_message(timeout)
            if m.kind == b"D":
                (n,) = struct.unpack("!H", m.payload[:2])
                pos, row = 2, []
                for _ in range(n):
                    (ln,) = struct.unpack("!i", m.payload[pos:pos + 4])
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(m.payload[pos:pos + ln].decode())
                        pos += ln
                rows.append(row)
            elif m.kind == b"E":
                errors.append(m)
            elif m.kind == b"Z":
                return rows, errors


class LoginError(Exception):
    def __init__(self, fields: dict) -> None:
        super().__init__(f"{fields.get('S', '?')} {fields.get('C', '?')}: {fields.get('M', '')}")
        self.fields = fields

    @property
    def sqlstate(self) -> Optional[str]:
        return self.fields.get("C")
