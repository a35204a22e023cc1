"""Hardening before and around authentication (issue 14): what an attacker who has no password
can make the proxy do. Oversized authentication messages are refused from their header with
FATAL 08P01 and cost no memory; one address cannot hold more than
max_unauthenticated_per_source half-open logins; unauthenticated startups do not count against
a tenant; a flood of tenant names does not push configured tenants out of the registry; a
tenant name that is not UTF-8 cannot break /metrics; startups PostgreSQL would refuse are
refused; refusals are counted and logged at a bounded rate; a transaction left idle is ended by
the default idle_transaction_timeout."""

from __future__ import annotations

import re
import socket
import struct
import time

import psycopg
import pytest

from harness.procmem import rss_outside_recv_buffers_kb
from harness import APP_USER, BENCH_USER, ROLES
from harness.scram import ScramClient
from harness.wire import (PROTOCOL_3, LoginError, RawConn, message, parse_messages,
                          startup_packet)

MB = 1024 * 1024



def _auth_request(raw: RawConn) -> int:
    m = raw.read_message(10)
    assert m.kind == b"R", m
    return struct.unpack("!I", m.payload[:4])[0]


def _drain_errors(sock: socket.socket, timeout: float) -> list:
    """Reads until EOF/reset/timeout; returns the ErrorResponses among the messages."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    msgs, _ = parse_messages(data)
    return [m for m in msgs if m.kind == b"E"]


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # the proxy refused and closed before taking it all: expected


def _login(p, app: str, user: str = BENCH_USER, db: str = "bench") -> RawConn:
    raw = RawConn("127.0.0.1", p.port)
    raw.login(user, ROLES[user].password, db, {"application_name": app})
    return raw


def _sasl_flood(p, n: int) -> int:
    """n unauthenticated clients, all connected at once, each sending a 1 MB
    SASLInitialResponse; each must get FATAL 08P01. Returns the proxy's RSS (kB) while they are
    all still connected."""
    conns = []
    try:
        for _ in range(n):
            raw = RawConn("127.0.0.1", p.port, timeout=20)
            raw.send(startup_packet({"user": APP_USER, "database": "app"}))
            assert _auth_request(raw) == 10  # AuthenticationSASL
            conns.append(raw)
        body = b"SCRAM-SHA-256\0" + struct.pack("!I", MB) + b"n,,n=x,r=" + b"A" * (MB - 9)
        big = message(b"p", body)
        for raw in conns:
            _send_quietly(raw.sock, big)
        peak = rss_outside_recv_buffers_kb(p.proc.pid)
        for raw in conns:
            errs = _drain_errors(raw.sock, 5)
            assert errs, "no ErrorResponse for an oversized SASL message"
            f = errs[0].fields()
            assert f.get("S") == "FATAL" and f.get("C") == "08P01", f
        return max(peak, rss_outside_recv_buffers_kb(p.proc.pid))
    finally:
        for raw in conns:
            raw.close()


@pytest.mark.timeout(180)
def test_oversized_sasl_messages_get_08p01_and_memory_stays_bounded(proxy_factory):
    p = proxy_factory({"proxy": {"max_unauthenticated_per_source": 1000}})
    pid = p.proc.pid
    _login(p, "warm").close()
    time.sleep(0.5)
    start = rss_outside_recv_buffers_kb(pid)
    # RSS outside the workers' fixed receive-buffer areas (harness/procmem.py): the buffers
    # are handed out round-robin, so each flood touches new ones until all are resident.
    first_peak = _sasl_flood(p, 200)
    time.sleep(1.0)
    base = rss_outside_recv_buffers_kb(pid)
    peak = _sasl_flood(p, 200)
    time.sleep(1.0)
    after = rss_outside_recv_buffers_kb(pid)
    grown_mb = (peak - base) / 1024
    left_mb = (after - base) / 1024
    print(f"RSS start {start} kB; first flood peak {first_peak} kB, after it {base} kB; "
          f"second flood peak {peak} kB (+{grown_mb:.1f} MB), after close {after} kB "
          f"(+{left_mb:.1f} MB)")
    # Old behaviour: +893 MB (4.5 MB per connection) while open, 455 MB kept after close.
    assert (first_peak - start) / 1024 < 40, "more than 200 KB per refused client"
    assert grown_mb < 20, f"proxy grew by {grown_mb:.1f} MB for 200 refused clients"
    assert left_mb < 10, f"proxy kept {left_mb:.1f} MB after they closed"
    assert p.metric("helios_proxy_preauth_refusals_total", reason="message_too_long") >= 400
    # The proxy still serves.
    _login(p, "after").close()


def test_oversized_password_message_is_refused_from_its_header(proxy_factory):
    p = proxy_factory()
    with RawConn("127.0.0.1", p.port) as raw:
        raw.send(startup_packet({"user": APP_USER, "database": "app"}))
        assert _auth_request(raw) == 10
        # Only the header of a 100,000-byte message: refused without waiting for the body.
        raw.send(b"p" + struct.pack("!I", 100_000 + 4))
        t0 = time.monotonic()
        errs = _drain_errors(raw.sock, 5)
        assert time.monotonic() - t0 < 3
        assert errs and errs[0].fields().get("C") == "08P01", errs
        assert "invalid message length" in errs[0].fields().get("M", "")


def test_unauthenticated_connections_per_source_are_capped(proxy_factory):
    p = proxy_factory({"proxy": {"max_unauthenticated_per_source": 8}})
    held = []
    try:
        for _ in range(8):
            raw = RawConn("127.0.0.1", p.port)
            raw.send(startup_packet({"user": APP_USER, "database": "app"}))
            assert _auth_request(raw) == 10
            held.append(raw)
        # The 9th from the same address is refused at once, before its startup packet.
        with RawConn("127.0.0.1", p.port) as raw:
            errs = _drain_errors(raw.sock, 5)
            assert errs, "9th unauthenticated connection was not refused"
            f = errs[0].fields()
            assert f.get("S") == "FATAL" and f.get("C") == "53300", f
            assert "max_unauthenticated_per_source" in f.get("M", "")
        assert p.metric("helios_proxy_preauth_refusals_total", reason="per_source_limit") >= 1
    finally:
        for raw in held:
            raw.close()
    # Once they are gone (or authenticated), the address logs in again; authenticated clients
    # do not count.
    time.sleep(0.3)
    logged_in = [_login(p, f"ok{i}") for i in range(10)]
    for raw in logged_in:
        raw.close()


def test_unauthenticated_startups_do_not_lock_a_tenant_out(proxy_factory):
    p = proxy_factory(tenant_quotas={
        "enabled": True, "identifier": "application_name",
        "limits": [{"tenant_pattern": "victim", "max_connections": 2}]})
    squatters = []
    try:
        for _ in range(2):  # startups naming the victim, never authenticated
            raw = RawConn("127.0.0.1", p.port)
            raw.send(startup_packet({"user": BENCH_USER, "database": "bench",
                                     "application_name": "victim"}))
            assert _auth_request(raw) == 10
            squatters.append(raw)
        a = _login(p, "victim")
        b = _login(p, "victim")
        # The limit itself still holds for authenticated clients.
        with pytest.raises(LoginError) as ei:
            _login(p, "victim")
        assert ei.value.sqlstate == "53300"
        assert p.metric("helios_proxy_login_failures_total", reason="tenant_quota") >= 1
        a.close()
        b.close()
    finally:
        for raw in squatters:
            raw.close()


@pytest.mark.timeout(240)
def test_tenant_name_flood_does_not_evict_configured_tenants(proxy_factory):
    p = proxy_factory(tenant_quotas={
        "enabled": True, "identifier": "application_name", "max_tenants": 40,
        "limits": [{"tenant_pattern": "victim", "max_connections": 3}]})
    _login(p, "victim").close()  # the configured tenant is known
    for i in range(120):  # three times the registry's size, each a new name
        _login(p, f"flood_{i}").close()
    # The victim still has its own state and limit (not the shared overflow state).
    held = [_login(p, "victim") for _ in range(3)]
    try:
        with pytest.raises(LoginError) as ei:
            _login(p, "victim")
        msg = ei.value.fields.get("M", "")
        assert ei.value.sqlstate == "53300" and '"victim"' in msg and "3" in msg, msg
    finally:
        for raw in held:
            raw.close()
    assert p.metric("helios_proxy_tenant_evictions_total") >= 80
    assert p.metric("helios_proxy_tenant_overflow_total") == 0
    assert p.metric("helios_proxy_tenants") <= 40


_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
                     r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*,?)?\})? '
                     r'[-+0-9.eEinfNaInf]+( [0-9]+)?$')


def _strict_exposition_check(raw: bytes) -> None:
    text = raw.decode("utf-8")  # strict: invalid UTF-8 raises
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        assert _SAMPLE.match(line), f"not a valid exposition line: {line!r}"


def _scram_login(raw: RawConn, password: str) -> None:
    """SCRAM login after a startup packet already sent, up to ReadyForQuery (ParameterStatus
    values are not decoded: they may echo bytes that are not UTF-8)."""
    scram = ScramClient(password)
    while True:
        m = raw.read_message(10)
        if m.kind == b"E":
            raise LoginError(m.fields())
        if m.kind == b"Z":
            return
        if m.kind != b"R":
            continue
        code = struct.unpack("!I", m.payload[:4])[0]
        if code == 10:
            first = scram.first_message()
            raw.send(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
        elif code == 11:
            raw.send(message(b"p", scram.final_message(m.payload[4:])))


def test_non_utf8_application_name_keeps_metrics_parseable(proxy_factory):
    import requests

    p = proxy_factory(tenant_quotas={"enabled": True, "identifier": "application_name"})
    bad = b"t\xff\xfe\xc3(" + b"\x01" + "é".encode() * 100
    body = struct.pack("!I", PROTOCOL_3)
    for k, v in ((b"user", BENCH_USER.encode()), (b"database", b"bench"),
                 (b"application_name", bad)):
        body += k + b"\0" + v + b"\0"
    body += b"\0"
    raw = RawConn("127.0.0.1", p.port)
    raw.send(struct.pack("!I", len(body) + 4) + body)
    _scram_login(raw, ROLES[BENCH_USER].password)
    try:
        r = requests.get(p.metrics_url, timeout=5)
        r.raise_for_status()
        _strict_exposition_check(r.content)
        labels = re.findall(r'tenant_id="([^"]*)"', r.content.decode())
        assert any(lb.startswith("t\ufffd") for lb in labels), labels
        assert all(len(lb.encode()) <= 128 for lb in labels)
    finally:
        raw.close()


def test_startup_with_unknown_parameters_is_refused_like_postgresql(proxy_factory):
    p = proxy_factory()
    params = {"user": APP_USER, "database": "app"}
    params.update({f"p{i}": "v" for i in range(1000)})
    log_before = p.stderr_path.stat().st_size
    with RawConn("127.0.0.1", p.port) as raw:
        raw.send(startup_packet(params))
        errs = _drain_errors(raw.sock, 5)
    assert errs, "a startup with 1000 unknown parameters was accepted"
    f = errs[0].fields()
    assert f.get("S") == "FATAL" and f.get("C") == "42704", f
    assert "unrecognized configuration parameter" in f.get("M", "")
    # A parameter fixed at server start is refused too (55P02), as by PostgreSQL.
    with RawConn("127.0.0.1", p.port) as raw, pytest.raises(LoginError) as ei:
        raw.login(APP_USER, ROLES[APP_USER].password, "app", {"shared_buffers": "1GB"})
    assert ei.value.sqlstate == "55P02"
    # Custom "prefix.name" parameters and ordinary settings are accepted, as by PostgreSQL.
    with RawConn("127.0.0.1", p.port) as raw:
        raw.login(APP_USER, ROLES[APP_USER].password, "app",
                  {"myext.flag": "on", "search_path": "public", "application_name": "x"})
        rows, errs = raw.simple_query("SELECT current_setting('myext.flag')")
        assert not errs and rows == [["on"]], (rows, errs)
    time.sleep(0.3)
    with open(p.stderr_path, "rb") as fh:
        fh.seek(log_before)
        grown = fh.read().decode(errors="replace").splitlines()
    assert len(grown) < 20, f"{len(grown)} log lines for two refused startups"


def test_failed_logins_and_violations_are_counted_and_logged_at_a_bounded_rate(proxy_factory):
    p = proxy_factory()
    log_before = p.stderr_path.stat().st_size
    t0 = time.monotonic()
    for _ in range(50):
        with RawConn("127.0.0.1", p.port) as raw:
            raw.send(startup_packet({"user": APP_USER, "database": "app"}))
            _auth_request(raw)
            raw.send(message(b"Q", b"SELECT 1\0"))  # not a password message
            errs = _drain_errors(raw.sock, 5)
            assert errs and errs[0].fields().get("C") == "08P01"
    for _ in range(150):
        with RawConn("127.0.0.1", p.port) as raw:
            with pytest.raises(LoginError) as ei:
                raw.login(APP_USER, "wrong password", "app")
            assert ei.value.sqlstate == "28P01"
    elapsed = time.monotonic() - t0
    time.sleep(1.2)
    # One more after a quiet second: its line reports what was suppressed.
    with RawConn("127.0.0.1", p.port) as raw, pytest.raises(LoginError):
        raw.login(APP_USER, "wrong again", "app")
    time.sleep(0.3)
    with open(p.stderr_path, "rb") as fh:
        fh.seek(log_before)
        text = fh.read().decode(errors="replace")
    refused = [ln for ln in text.splitlines() if "login refused" in ln or "refused before" in ln]
    assert any("127.0.0.1" in ln and f'user "{APP_USER}"' in ln and "password" in ln
               for ln in refused), refused[:5]
    assert any("protocol_violation" in ln for ln in refused), refused[:5]
    # At most 20 lines a second per worker (2 workers), plus slack for window edges.
    budget = 2 * 20 * (int(elapsed) + 2) + 2
    assert len(refused) <= budget, f"{len(refused)} lines in {elapsed:.1f}s"
    assert len(refused) < 201, "one line per refusal: not rate-limited"
    assert "suppressed" in text
    assert p.metric("helios_proxy_login_failures_total", reason="password") >= 151
    assert p.metric("helios_proxy_preauth_refusals_total", reason="protocol_violation") >= 50


def _idle_in_transaction_clients(p, n: int) -> list:
    conns = []
    for _ in range(n):
        c = psycopg.connect(**p.conninfo(BENCH_USER, "bench").kwargs())
        c.execute("SELECT 1")  # psycopg opens a transaction; it stays open and idle
        conns.append(c)
    return conns


def _expect_25p03(c) -> None:
    with pytest.raises(psycopg.Error) as ei:
        c.execute("SELECT 2")
    diag = getattr(ei.value, "sqlstate", None)
    assert diag in ("25P03", None), ei.value
    assert "idle-in-transaction" in str(ei.value) or diag == "25P03", ei.value


@pytest.mark.timeout(60)
def test_idle_transaction_timeout_frees_the_backends(proxy_factory):
    p = proxy_factory({"connection_pool": {"idle_transaction_timeout": "1s",
                                           "acquire_timeout": "10s"}}, pool_size=2)
    idle = _idle_in_transaction_clients(p, 2)
    t0 = time.monotonic()
    # A third client needs a backend: it gets one once the idle ones are timed out.
    third = psycopg.connect(**p.conninfo(BENCH_USER, "bench").kwargs(), autocommit=True)
    assert third.execute("SELECT 3").fetchone() == (3,)
    waited = time.monotonic() - t0
    assert 0.5 < waited < 5, waited
    time.sleep(1.5)  # both idle clients have passed their timeout (the third took the first)
    for c in idle:
        _expect_25p03(c)
        c.close()
    # The backends were rolled back, not left in a transaction.
    deadline = time.monotonic() + 5
    while True:
        n = third.execute("SELECT count(*) FROM pg_stat_activity WHERE state = "
                          "'idle in transaction' AND datname = 'bench'").fetchone()[0]
        if n == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert n == 0, "a backend was left idle in transaction"
    third.close()
    assert p.metric("helios_proxy_errors_total", sqlstate="25P03") >= 2


@pytest.mark.timeout(150)
def test_idle_transaction_timeout_is_on_by_default(proxy_factory, data_path):
    if data_path == "kernel":
        # A minute of waiting for a value the data path does not change; the timeout's
        # enforcement on the kernel path: test_idle_transaction_timeout_frees_the_backends.
        pytest.skip("the default's value is the same on both paths (checked on userspace)")
    p = proxy_factory({"connection_pool": {"acquire_timeout": "90s"}}, pool_size=2)
    idle = _idle_in_transaction_clients(p, 2)
    t0 = time.monotonic()
    third = psycopg.connect(**p.conninfo(BENCH_USER, "bench").kwargs(), autocommit=True)
    assert third.execute("SELECT 3").fetchone() == (3,)
    waited = time.monotonic() - t0
    assert 55 < waited < 70, waited  # the default is 60 s
    time.sleep(1.5)
    for c in idle:
        _expect_25p03(c)
        c.close()
    third.close()
