"""Bad bytes from clients: each gets a FATAL ErrorResponse and a close, while a concurrent
pgbench run through the same proxy is unaffected. The bytes the proxy returns are parsed from a
raw socket."""

import struct
import threading
import time

import pytest

from harness import APP_USER, BENCH_USER, ROLES, pgbench, psql
from harness.wire import PROTOCOL_3, RawConn, query_message, startup_packet

STARTUP_TIMEOUT = 2.0
PROTOCOL_ERRORS = {"08P01"}


def _valid_startup() -> bytes:
    return startup_packet({"user": APP_USER, "database": "app"})


def _trickle(c: RawConn, data: bytes, interval: float, stop_after: float) -> None:
    """Sends data byte by byte, `interval` apart, until done, refused, or `stop_after` s."""
    t0 = time.monotonic()
    for b in data:
        try:
            c.send(bytes([b]))
        except OSError:
            return
        if time.monotonic() - t0 > stop_after:
            return
        time.sleep(interval)


# name -> (action on a fresh RawConn, allowed SQLSTATEs or None = any, (min s, max s) to close)
def _garbage(c):
    c.send(struct.pack("!I", 64) + bytes((i * 37 + 11) % 256 for i in range(60)))


def _http(c):
    c.send(b"GET / HTTP/1.1\r\nHost: proxy\r\nUser-Agent: curl\r\n\r\n")


def _len_max(c):
    c.send(struct.pack("!II", 2**31 - 1, PROTOCOL_3) + b"user\0app\0")


def _len_too_small(c):
    c.send(struct.pack("!II", 2, PROTOCOL_3))


def _oversized(c):
    c.send(struct.pack("!II", 20000, PROTOCOL_3) + b"user\0" + b"a" * 400 + b"\0")


def _truncated_then_eof(c):
    c.send(_valid_startup()[:20])
    c.shutdown_write()


def _truncated_then_silence(c):
    c.send(_valid_startup()[:20])


def _slow_startup(c):
    _trickle(c, _valid_startup(), interval=0.3, stop_after=STARTUP_TIMEOUT + 4)


def _silent_after_auth_request(c):
    c.send(_valid_startup())  # then never answer the SASL request


def _query_instead_of_password(c):
    c.send(_valid_startup())
    c.read_message(5)  # AuthenticationSASL
    c.send(query_message("SELECT 1"))


T = STARTUP_TIMEOUT
CASES = {
    "garbage": (_garbage, PROTOCOL_ERRORS | {"0A000"}, (0, 2)),
    "http_request": (_http, PROTOCOL_ERRORS, (0, 2)),
    "length_2^31-1": (_len_max, PROTOCOL_ERRORS, (0, 2)),
    "length_too_small": (_len_too_small, PROTOCOL_ERRORS, (0, 2)),
    "oversized_startup": (_oversized, PROTOCOL_ERRORS, (0, 2)),
    "truncated_then_eof": (_truncated_then_eof, PROTOCOL_ERRORS, (0, 2)),
    "truncated_then_silence": (_truncated_then_silence, None, (0.8 * T, T + 2)),
    "slow_startup": (_slow_startup, None, (0.8 * T, T + 2)),
    "silent_after_auth_request": (_silent_after_auth_request, None, (0.8 * T, T + 2)),
    "query_instead_of_password": (_query_instead_of_password, PROTOCOL_ERRORS, (0, 2)),
}
# Where PgBouncer (the stand-in) differs: it refuses a partial startup packet at once instead of
# waiting for the rest, and closes silently on a query sent instead of a password.
EARLY_OK = {"truncated_then_silence": "split_startup", "slow_startup": "split_startup"}
SILENT_CLOSE_OK = {"query_instead_of_password": "auth_phase_error_response"}
# A client that half-closes mid-startup is gone: a prompt close is enough (PostgreSQL sends
# nothing either); an ErrorResponse, if sent, must still be a FATAL 08P01.
SILENT_CLOSE_ALWAYS_OK = {"truncated_then_eof"}


def _run_case(proxy, name, results):
    action, _, _ = CASES[name]
    try:
        with RawConn(proxy.host, proxy.port) as c:
            t0 = time.monotonic()
            action(c)
            ex = c.read_until_close(T + 6)
            ex.elapsed = time.monotonic() - t0
        results[name] = ex
    except Exception as e:  # noqa: BLE001 - reported per case below
        results[name] = e


@pytest.mark.timeout(90)
def test_bad_input_gets_fatal_and_close_while_pgbench_is_unaffected(proxy_factory):
    proxy = proxy_factory(mode="transaction", pool_size=10,
                          proxy={"startup_timeout": f"{T:g}s"})
    run = pgbench(proxy.conninfo(BENCH_USER, "bench"), clients=20, jobs=2, seconds=10,
                  select_only=True, background=True)
    time.sleep(1.5)
    results: dict = {}
    threads = [threading.Thread(target=_run_case, args=(proxy, n, results)) for n in CASES]
    for th in threads:
        th.start()
    for th in threads:
        th.join(T + 20)
    r = run.result()

    problems = []
    for name, (_, sqlstates, (tmin, tmax)) in CASES.items():
        ex = results.get(name)
        if isinstance(ex, Exception) or ex is None:
            problems.append(f"{name}: {ex!r}")
            continue
        kinds = [m.kind for m in ex.messages]
        fatal = [m for m in ex.errors if m.fields().get("S") == "FATAL"]
        silent_ok = name in SILENT_CLOSE_ALWAYS_OK or (
            name in SILENT_CLOSE_OK and proxy.unsupported(SILENT_CLOSE_OK[name]))
        if not fatal and not (silent_ok and not ex.messages):
            problems.append(f"{name}: no FATAL ErrorResponse: {ex.describe()}")
        elif fatal and sqlstates is not None and fatal[0].sqlstate not in sqlstates:
            problems.append(f"{name}: SQLSTATE {fatal[0].sqlstate}, want one of "
                            f"{sorted(sqlstates)}: {ex.describe()}")
        if not ex.closed:
            problems.append(f"{name}: connection not closed: {ex.describe()}")
        if b"Z" in kinds or b"K" in kinds:
            problems.append(f"{name}: got as far as a session: {ex.describe()}")
        lo = 0 if (name in EARLY_OK and proxy.unsupported(EARLY_OK[name])) else tmin
        if not lo <= ex.elapsed <= tmax:
            problems.append(f"{name}: closed after {ex.elapsed:.2f}s, want {lo:.1f}..{tmax:.1f}s")
    assert not problems, "\n".join(problems)

    assert r.clean, r.describe()
    assert proxy.alive()
    assert psql(proxy.conninfo(), "SELECT 1").rows == [["1"]]


@pytest.mark.needs("split_startup")
def test_startup_split_across_reads_within_the_timeout_works(proxy_factory):
    proxy = proxy_factory(proxy={"startup_timeout": f"{T:g}s"})
    with RawConn(proxy.host, proxy.port) as c:
        pkt = _valid_startup()
        pieces = [pkt[i:i + 7] for i in range(0, len(pkt), 7)]
        for piece in pieces:  # slow (~1 s in total) but within the limit
            c.send(piece)
            time.sleep(1.0 / len(pieces))
        status = c.login(APP_USER, ROLES[APP_USER].password, "app", send_startup=False)
        assert status["_txn_status"] == "I"
        rows, errors = c.simple_query("SELECT 'split ok'")
        assert rows == [["split ok"]] and not errors
