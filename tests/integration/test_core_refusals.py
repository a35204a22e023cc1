"""Refusals an operator must see (issue 14 item 10): QPS-limit refusals, acquire_timeout
refusals, max_active waits that time out, tenant max_connections refusals and protocol
violations of authenticated clients each give a log line naming the source address, the user
and the tenant, and a counter. (The lines share the rate limit of the security log, checked in
test_core_hardening.py.)"""

from __future__ import annotations

import re
import struct
import time

import psycopg
import pytest

from harness import BENCH_USER, ROLES
from harness.wire import LoginError, RawConn

pytestmark = pytest.mark.needs("tenant_quotas", "metrics")


def quotas(rules):
    return {"tenant_quotas": {"enabled": True, "identifier": "application_name", "limits": rules}}


def _log(p) -> str:
    return p.stderr_path.read_text(errors="replace")


def _wait_log(p, pattern: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, _log(p))
        if m:
            return m.group(0)
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line matching {pattern!r}:\n{_log(p)[-3000:]}")
        time.sleep(0.1)


def _who(tenant: str) -> str:
    return rf'client 127\.0\.0\.1(:\d+)? user "{BENCH_USER}" tenant "{tenant}"'


def _connect(p, tenant: str, **kw):
    return psycopg.connect(**p.conninfo(BENCH_USER, "bench", application_name=tenant).kwargs(),
                           autocommit=True, **kw)


def test_qps_refusal_is_logged_and_counted(proxy_factory):
    p = proxy_factory(quotas([{"tenant_pattern": "slow_*", "max_qps": 2, "qps_burst": 1,
                               "qps_max_wait": "50ms"}]))
    with _connect(p, "slow_one") as conn:
        refused = 0
        for _ in range(10):
            try:
                conn.execute("SELECT 1")
            except psycopg.Error as e:
                assert e.sqlstate == "53400", str(e)
                refused += 1
    assert refused >= 1
    line = _wait_log(p, _who("slow_one") + r": refused by a quota \(qps\): .*max_qps.*")
    assert "slow_one" in line
    assert p.metric("helios_proxy_quota_rejections_total", tenant_id="slow_one",
                    reason="qps") == refused


def test_acquire_timeout_and_max_active_timeouts_are_logged_and_counted(proxy_factory):
    p = proxy_factory(quotas([{"tenant_pattern": "capped_*", "max_active": 1}]),
                      pool_size=2, connection_pool={"acquire_timeout": "300ms"})
    # max_active: one transaction of the tenant open, a second one waits at the gate.
    holder = _connect(p, "capped_a")
    holder.execute("BEGIN")
    holder.execute("SELECT 1")
    with _connect(p, "capped_a") as waiter:
        with pytest.raises(psycopg.Error) as ei:
            waiter.execute("SELECT 1")
        assert ei.value.sqlstate == "53300", str(ei.value)
        assert "max_active" in str(ei.value), str(ei.value)
    _wait_log(p, _who("capped_a") + r": refused by a quota \(max_active\): .*max_active of 1")
    assert p.metric("helios_proxy_quota_rejections_total", tenant_id="capped_a",
                    reason="max_active") == 1
    # acquire_timeout: the pool's two backends held by transactions, a third one waits.
    other = _connect(p, "free_b")
    other.execute("BEGIN")
    other.execute("SELECT 1")
    with _connect(p, "free_c") as late:
        with pytest.raises(psycopg.Error) as ei:
            late.execute("SELECT 1")
        assert ei.value.sqlstate == "53300", str(ei.value)
    _wait_log(p, _who("free_c") + r": refused by a quota \(acquire_timeout\): no backend")
    assert p.metric("helios_proxy_quota_rejections_total", tenant_id="free_c",
                    reason="acquire_timeout") == 1
    holder.close()
    other.close()


def test_tenant_max_connections_refusal_is_logged_and_counted(proxy_factory):
    p = proxy_factory(quotas([{"tenant_pattern": "small_*", "max_connections": 1}]))
    with _connect(p, "small_x"):
        with RawConn("127.0.0.1", p.port) as raw, pytest.raises(LoginError) as ei:
            raw.login(BENCH_USER, ROLES[BENCH_USER].password, "bench",
                      {"application_name": "small_x"})
        assert ei.value.sqlstate == "53300"
    _wait_log(p, _who("small_x") + r": login refused \(tenant_quota\): .*small_x")
    assert p.metric("helios_proxy_login_failures_total", reason="tenant_quota") == 1
    assert p.metric("helios_proxy_quota_rejections_total", tenant_id="small_x",
                    reason="connections") == 1


def test_protocol_violation_after_login_is_logged_and_counted(proxy_factory):
    p = proxy_factory(quotas([{"tenant_pattern": "rude_*", "max_connections": 10}]))
    raw = RawConn("127.0.0.1", p.port)
    raw.login(BENCH_USER, ROLES[BENCH_USER].password, "bench", {"application_name": "rude_t"})
    raw.send(b"Q" + struct.pack("!I", 2))  # a length field below 4: unframeable
    m = raw.read_message(10)
    assert m.kind == b"E", m
    assert m.fields().get("C") == "08P01", m.fields()
    raw.close()
    _wait_log(p, _who("rude_t") + r": closed for a protocol violation: invalid message")
    assert p.metric("helios_proxy_protocol_violations_total") == 1
