"""Multi-tenancy (issue 3): tenant identity by application_name, per-tenant limits
(max_connections, max_qps with qps_max_wait, max_transaction_duration, max_active), fair queuing
across tenants by weight, and tier pools keeping a premium tenant isolated from a noisy one."""

from __future__ import annotations

import glob
import os
import statistics
import tempfile
import threading
import time

import psycopg
import pytest

from harness import BENCH_USER, ROLES, BackendSampler, pgbench
from harness.wire import LoginError, RawConn

pytestmark = pytest.mark.needs("tenant_quotas")


def quotas(rules, **extra):
    tq = {"enabled": True, "identifier": "application_name", "limits": rules}
    tq.update(extra)
    return {"tenant_quotas": tq}


def test_connection_quota_51st_connection_gets_53300_and_others_still_connect(proxy_factory):
    p = proxy_factory(quotas([{"tenant_pattern": "tenant_*", "max_connections": 50}]))
    ci = p.conninfo(BENCH_USER, "bench", application_name="tenant_acme")
    held = [psycopg.connect(**ci.kwargs()) for _ in range(50)]
    try:
        # The 51st: checked on the wire, where the SQLSTATE is visible.
        with RawConn("127.0.0.1", p.port) as raw, pytest.raises(LoginError) as ei:
            raw.login(BENCH_USER, ROLES[BENCH_USER].password, "bench",
                      {"application_name": "tenant_acme"})
        err = ei.value
        assert err.sqlstate == "53300", str(err)
        assert err.fields.get("S") == "FATAL", err.fields
        msg = err.fields.get("M", "")
        assert "tenant_acme" in msg and "50" in msg, msg
        # Another tenant is not affected, and the refused tenant's held sessions still work.
        other = psycopg.connect(**p.conninfo(BENCH_USER, "bench", application_name="tenant_other").kwargs())
        assert other.execute("SELECT 1").fetchone() == (1,)
        other.close()
        assert held[0].execute("SELECT 2").fetchone() == (2,)
    finally:
        for c in held:
            c.close()
    # Closing one frees a slot for the tenant.
    again = psycopg.connect(**ci.kwargs())
    assert again.execute("SELECT 3").fetchone() == (3,)
    again.close()


@pytest.mark.timeout(120)
def test_qps_quota_holds_a_tenant_near_its_rate(proxy_factory):
    # A tenant at max_qps=200 driven at 1000 tx/s completes about 200/s. qps_max_wait is long,
    # so statements wait for tokens instead of failing; a small burst keeps the start honest.
    p = proxy_factory(quotas([{"tenant_pattern": "tenant_*", "max_qps": 200, "qps_burst": 10,
                               "qps_max_wait": "60s"}]))
    ci = p.conninfo(BENCH_USER, "bench", application_name="tenant_rate")
    seconds = 8
    r = pgbench(ci, clients=10, jobs=2, seconds=seconds, select_only=True, rate=1000,
                timeout=seconds + 60)
    assert r.failed == 0, r.errors
    qps = r.tps  # pgbench's rate, without the time spent connecting
    assert 180 <= qps <= 220, f"expected ~200 qps (±10%), got {qps:.1f} ({r.processed} in {seconds}s)"
    # A tenant with no rule is not throttled.
    free = pgbench(p.conninfo(BENCH_USER, "bench", application_name="unlimited_app"), clients=4,
                   jobs=2, seconds=3, select_only=True, timeout=60)
    assert free.failed == 0 and free.processed / 3 > 1000, free.tps


def test_qps_over_budget_past_qps_max_wait_is_rejected_with_53400(proxy_factory):
    p = proxy_factory(quotas([{"tenant_pattern": "slow_*", "max_qps": 2, "qps_burst": 1,
                               "qps_max_wait": "50ms"}]))
    conn = psycopg.connect(**p.conninfo(BENCH_USER, "bench", application_name="slow_tenant").kwargs(),
                           autocommit=True)
    ok, rejected = 0, []
    for _ in range(10):
        try:
            conn.execute("SELECT 1").fetchone()
            ok += 1
        except psycopg.Error as e:
            rejected.append(e)
    assert ok >= 1 and rejected, (ok, rejected)
    e = rejected[0]
    assert e.sqlstate == "53400", str(e)
    assert "slow_tenant" in str(e) and "max_qps" in str(e) and "qps_max_wait" in str(e), str(e)
    # The session survives a rejection: after the bucket refills the client goes on.
    time.sleep(1.1)
    assert conn.execute("SELECT 42").fetchone() == (42,)
    conn.close()


def test_transaction_over_max_duration_is_cancelled_and_backend_returns_clean(proxy_factory, pg):
    p = proxy_factory(quotas([{"tenant_pattern": "batch_*", "max_transaction_duration": "1s"}]),
                      pool_size=1)
    conn = psycopg.connect(**p.conninfo(BENCH_USER, "bench", application_name="batch_job").kwargs())
    start = time.monotonic()
    with pytest.raises(psycopg.Error) as ei:
        conn.execute("SELECT pg_sleep(10)")  # psycopg opens a transaction (BEGIN) first
    took = time.monotonic() - start
    assert ei.value.sqlstate == "57014", str(ei.value)
    assert "max_transaction_duration" in str(ei.value), str(ei.value)
    assert 0.9 <= took <= 2.5, f"cancelled after {took:.2f}s, expected about 1s"
    conn.rollback()
    # The one backend is clean: the next transaction (same or another client) runs normally.
    assert conn.execute("SELECT 7").fetchone() == (7,)
    conn.commit()
    other = psycopg.connect(**p.conninfo(BENCH_USER, "bench", application_name="other").kwargs())
    assert other.execute("SELECT txid_current_if_assigned() IS NULL").fetchone() == (True,)
    other.close()
    conn.close()
    assert not [b for b in pg.backends(BENCH_USER) if b["state"] == "idle in transaction"]


def test_every_statement_over_max_duration_is_cancelled_between_short_ones(proxy_factory):
    # The ReadyForQuery bookkeeping once had three copies, and the kernel path's hand-back copy
    # did not clear the "already cancelled" mark: a later transaction of the same client could
    # then run past the limit. Each long statement here must be cancelled at about 1 s, with
    # short ones (spliced when the kernel data path runs) before it.
    p = proxy_factory(quotas([{"tenant_pattern": "batch_*", "max_transaction_duration": "1s"}]),
                      pool_size=2)
    conn = psycopg.connect(**p.conninfo(BENCH_USER, "bench", application_name="batch_r").kwargs(),
                           autocommit=True)
    for rnd in range(3):
        for i in range(20):
            assert conn.execute("SELECT %s::int", (i,)).fetchone() == (i,)
        start = time.monotonic()
        with pytest.raises(psycopg.Error) as ei:
            conn.execute("SELECT pg_sleep(6)")
        took = time.monotonic() - start
        assert ei.value.sqlstate == "57014", f"round {rnd}: {ei.value}"
        assert took <= 2.5, f"round {rnd}: cancelled after {took:.2f}s, expected about 1s"
    conn.close()


def test_idle_in_transaction_past_max_duration_closes_the_client(proxy_factory, pg):
    p = proxy_factory(quotas([{"tenant_pattern": "batch_*", "max_transaction_duration": "1s"}]),
                      pool_size=1)
    conn = psycopg.connect(**p.conninfo(BENCH_USER, "bench", application_name="batch_idle").kwargs())
    conn.execute("SELECT 1")  # BEGIN ... then sit idle in the transaction
    time.sleep(1.6)
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 2")
    conn.close()
    # The backend was rolled back and returned: another client gets it right away.
    other = psycopg.connect(**p.conninfo(BENCH_USER, "bench", application_name="x").kwargs(),
                            autocommit=True)
    assert other.execute("SELECT 1").fetchone() == (1,)
    other.close()


@pytest.mark.timeout(120)
def test_max_active_caps_a_tenants_concurrent_backends(proxy_factory, pg):
    p = proxy_factory(quotas([{"tenant_pattern": "capped_*", "max_active": 2}]), pool_size=10)
    ci = p.conninfo(BENCH_USER, "bench", application_name="capped_tenant")
    with BackendSampler(pg, interval=0.02) as s:
        r = pgbench(ci, clients=8, jobs=2, transactions=10, script="SELECT pg_sleep(0.05);\n",
                    timeout=60)
    assert r.failed == 0, r.errors
    running = s.max_by_app_state.get((BENCH_USER, "capped_tenant", "active"), 0)
    assert 1 <= running <= 2, (f"tenant ran {running} statements at once with max_active = 2: "
                               f"{dict(s.max_by_app_state)}")


def _latencies_ms(prefix: str) -> list[float]:
    out = []
    for path in glob.glob(prefix + "*"):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    out.append(int(parts[2]) / 1000.0)
    return out


def _run_b(p, seconds: int, tmp: str, tag: str):
    prefix = os.path.join(tmp, f"b-{tag}")
    r = pgbench(p.conninfo(BENCH_USER, "bench", application_name="premium_b"), clients=10,
                jobs=2, seconds=seconds, script="SELECT pg_sleep(0.005);\n",
                extra=["-l", f"--log-prefix={prefix}"], timeout=seconds + 60)
    assert r.failed == 0, r.errors
    lat = sorted(_latencies_ms(prefix))
    p99 = lat[int(0.99 * (len(lat) - 1))] if lat else float("inf")
    return r.processed / seconds, p99


@pytest.mark.timeout(240)
def test_noisy_neighbour_cannot_starve_a_premium_tenant(proxy_factory):
    # Free tenants share one small pool; each premium tenant has a dedicated pool. Tenant A
    # (free) runs 200 clients flat out, far beyond its pool; tenant B (premium) runs 10.
    cfg = quotas(
        [{"tenant_pattern": "free_*", "tier": "free"},
         {"tenant_pattern": "premium_*", "tier": "premium"}])
    cfg["tiers"] = {"free": {"mode": "shared", "pool_size": 8, "weight": 1},
                    "premium": {"mode": "dedicated", "pool_size": 10, "weight": 4,
                                "expected_tenants": 2}}
    p = proxy_factory(cfg, pool_size=10)
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)
        alone_tps, alone_p99 = _run_b(p, 6, tmp, "alone")
        noisy = pgbench(p.conninfo(BENCH_USER, "bench", application_name="free_a"), clients=200,
                        jobs=2, seconds=14, script="SELECT pg_sleep(0.005);\n", timeout=120,
                        background=True)
        time.sleep(3)
        busy_tps, busy_p99 = _run_b(p, 6, tmp, "busy")
        a = noisy.result()
    print(f"\nnoisy neighbour: B alone {alone_tps:.0f} tps p99 {alone_p99:.1f} ms; next to A "
          f"{busy_tps:.0f} tps p99 {busy_p99:.1f} ms; A {a.processed / 14:.0f} tps")
    assert a.failed == 0, a.errors
    assert a.processed > 0
    assert busy_tps >= 0.8 * alone_tps, (
        f"B got {busy_tps:.0f} tps next to A, {alone_tps:.0f} alone (< 80%)")
    assert busy_p99 <= 3 * alone_p99, (
        f"B's p99 was {busy_p99:.1f} ms next to A, {alone_p99:.1f} ms alone (> 3x)")


@pytest.mark.timeout(120)
def test_fair_queue_shares_a_saturated_pool_by_weight(proxy_factory):
    # Two tenants in one shared pool, both backlogged: they get backends in proportion 3:1.
    cfg = quotas([{"tenant_pattern": "gold_*", "tier": "shared", "weight": 3},
                  {"tenant_pattern": "bronze_*", "tier": "shared", "weight": 1}])
    cfg["tiers"] = {"shared": {"mode": "shared", "pool_size": 4}}
    p = proxy_factory(cfg)
    script = "SELECT pg_sleep(0.01);\n"
    gold = pgbench(p.conninfo(BENCH_USER, "bench", application_name="gold_1"), clients=20, jobs=1,
                   seconds=8, script=script, timeout=60, background=True)
    bronze = pgbench(p.conninfo(BENCH_USER, "bench", application_name="bronze_1"), clients=20,
                     jobs=1, seconds=8, script=script, timeout=60, background=True)
    g, b = gold.result(), bronze.result()
    assert g.failed == 0 and b.failed == 0, (g.errors, b.errors)
    ratio = g.processed / max(b.processed, 1)
    print(f"\nfair queue: gold {g.processed}, bronze {b.processed}, ratio {ratio:.2f}")
    assert 2.4 <= ratio <= 3.6, f"gold:bronze = {g.processed}:{b.processed} = {ratio:.2f}, expected ~3"
