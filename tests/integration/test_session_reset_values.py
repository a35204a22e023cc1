"""A client's startup parameters are its session's reset values (RESET, RESET ALL, DISCARD ALL,
SET x TO DEFAULT, SET TIME ZONE LOCAL), through the proxy as directly: the values and the
ParameterStatus messages, inside and outside transaction blocks; a DISCARD ALL that failed
changes nothing; a second Parse of a prepared name is answered 42P05. Each sequence runs
directly against PostgreSQL and through the proxy (transaction pooling), and the replies
(ParameterStatus values included) must be the same."""

from __future__ import annotations

import struct

from harness import APP_USER, ROLES
from harness.wire import RawConn, message, query_message

STARTUP = {"application_name": "reset_a", "options": "-c TimeZone=Asia/Tokyo -c DateStyle=SQL,DMY "
           "-c search_path=pg_catalog,public"}
SHOW = ("SELECT current_setting('TimeZone'), current_setting('DateStyle'), "
        "current_setting('search_path'), current_setting('application_name')")
SYNC = message(b"S")


def _parse(name: bytes, sql: bytes) -> bytes:
    return message(b"P", name + b"\0" + sql + b"\0" + struct.pack("!h", 0))


def _summary(raw: RawConn) -> list:
    out = []
    while True:
        m = raw.read_message(10)
        if m.kind == b"E":
            out.append(("E", m.sqlstate))
        elif m.kind == b"S":
            name, value = m.payload.split(b"\0")[:2]
            if name in (b"TimeZone", b"DateStyle", b"application_name"):
                out.append(("S", name.decode(), value.decode()))
        elif m.kind == b"D":
            out.append(("D", m.payload))
        elif m.kind in (b"C", b"Z"):
            out.append((m.kind.decode(), m.payload.rstrip(b"\0").decode()))
        if m.kind == b"Z":
            return out


def _run(host: str, port: int, steps: list) -> tuple:
    with RawConn(host, port) as raw:
        status = raw.login(APP_USER, ROLES[APP_USER].password, "app", extra=STARTUP)
        hello = {k: status.get(k) for k in ("TimeZone", "DateStyle", "application_name")}
        got = []
        for step in steps:
            raw.send(step)
            got.append(_summary(raw))
        return hello, got


def _both(pg, proxy, steps: list):
    want = _run(pg.host, pg.port, steps)
    got = _run("127.0.0.1", proxy.port, steps)
    assert got == want, f"\nproxy:  {got}\ndirect: {want}"


def _q(sql: str) -> bytes:
    return query_message(sql)


def test_resets_return_to_the_startup_values(proxy_factory, pg):
    p = proxy_factory(pool_size=2)
    _both(pg, p, [
        _q("SET TimeZone = 'Europe/Paris'"), _q("SET DateStyle = German"),
        _q("SET search_path = public"), _q("SET application_name = other"),
        _q("RESET ALL"), _q(SHOW),
        _q("SET TimeZone = 'Europe/Paris'"), _q("SET TIME ZONE LOCAL"), _q(SHOW),
        _q("SET search_path TO public"), _q("SET search_path TO DEFAULT"), _q(SHOW),
        _q("SET application_name = x"), _q("RESET application_name"), _q(SHOW),
        _q("SET DateStyle = German"), _q("DISCARD ALL"), _q(SHOW),
    ])


def test_resets_inside_transaction_blocks(proxy_factory, pg):
    p = proxy_factory(pool_size=2)
    _both(pg, p, [
        _q("SET TimeZone = 'Europe/Paris'"),
        _q("BEGIN"), _q("RESET ALL"), _q(SHOW), _q("ROLLBACK"), _q(SHOW),
        _q("BEGIN"), _q("RESET TimeZone"), _q(SHOW), _q("COMMIT"), _q(SHOW),
        _q("SET DateStyle = German"), _q("RESET ALL; SELECT 1/0"), _q(SHOW),
    ])


def test_a_failed_discard_all_changes_nothing(proxy_factory, pg):
    p = proxy_factory(pool_size=2)
    _both(pg, p, [
        _q("SET DateStyle = German"), _q("SET application_name = kept"),
        _q("BEGIN"), _q("DISCARD ALL"), _q("ROLLBACK"), _q(SHOW),
        _parse(b"dup", b"SELECT 1") + SYNC,
        _q("BEGIN"), _q("DEALLOCATE ALL"), _q("ROLLBACK"),
        message(b"B", b"\0dup\0" + struct.pack("!hhh", 0, 0, 0))
        + message(b"E", b"\0" + struct.pack("!i", 0)) + SYNC,
    ])


def test_a_second_parse_of_a_name_is_refused(proxy_factory, pg):
    p = proxy_factory(pool_size=2)
    _both(pg, p, [
        _parse(b"dup", b"SELECT 1") + SYNC,
        _parse(b"dup", b"SELECT 2") + SYNC,
        _q("BEGIN"), _parse(b"dup", b"SELECT 3") + SYNC, _q("ROLLBACK"),
        _parse(b"dup", b"SELECT 1") + message(b"B", b"\0dup\0" + struct.pack("!hhh", 0, 0, 0))
        + message(b"E", b"\0" + struct.pack("!i", 0)) + SYNC,
        message(b"B", b"\0dup\0" + struct.pack("!hhh", 0, 0, 0))
        + message(b"E", b"\0" + struct.pack("!i", 0)) + SYNC,
    ])
