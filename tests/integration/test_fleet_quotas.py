"""Fleet-wide tenant quotas through Redis (issue 16): three instances, one real redis-server.
A 5-connection tenant gets exactly 5 across the instances (separate ports and one SO_REUSEPORT
port), a freed unit is admitted on another instance, max_qps holds across instances, a killed
instance's share returns within instance_ttl, and Redis going away degrades to static shares
without client errors, then recovers."""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
import uuid

import psycopg
import pytest

from harness import BENCH_USER, ROLES, BackendSampler, helios_binary, pgbench
from harness.tls_terminator import TlsTerminator
from harness.wire import LoginError, RawConn

pytestmark = [pytest.mark.needs("tenant_quotas"), pytest.mark.timeout(120)]

RENEW_S = 0.1
TTL_S = 1.0
OUTAGE_S = 10.0  # Redis down under load (issue 16)



def fleet(proxy_factory, redis, rules, n=3, same_port=False, pool_size=None, sections=None,
          **fleet_extra):
    """n instances sharing one key prefix (fresh per test) in `redis`; `sections` are more
    config sections for every instance."""
    prefix = "t" + uuid.uuid4().hex[:8]
    procs = []
    for i in range(n):
        f = {"redis_url": redis.url, "instance_id": f"{prefix}-{i}", "key_prefix": prefix,
             "renew_interval": f"{int(RENEW_S * 1000)}ms", "instance_ttl": f"{int(TTL_S * 1000)}ms",
             "admission_wait": "600ms", "redis_timeout": "200ms"}
        f.update(fleet_extra)
        ov = {"fleet": f, "tenant_quotas": {"enabled": True, "identifier": "application_name",
                                            "limits": rules}}
        if pool_size is not None:
            ov["backend"] = {"max_connections": pool_size}
        if same_port and procs:
            ov["proxy"] = {"listen_address": procs[0].config["proxy"]["listen_address"]}
        ov.update(sections or {})
        procs.append(proxy_factory(ov))
    # Every instance has renewed at least once and sees the others.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(p.admin_get("/api/v1/fleet").json().get("live_instances") == n for p in procs):
            break
        time.sleep(0.05)
    return procs


def login(p, tenant, port=None):
    """A held connection, or the LoginError's SQLSTATE."""
    raw = RawConn("127.0.0.1", port or p.port)
    try:
        raw.login(BENCH_USER, ROLES[BENCH_USER].password, "bench", {"application_name": tenant})
        return raw
    except LoginError as e:
        raw.close()
        return e.sqlstate


def test_five_connection_tenant_gets_exactly_five_across_three_instances(proxy_factory, redis):
    procs = fleet(proxy_factory, redis, [{"tenant_pattern": "acme", "max_connections": 5}])
    held, refused = [], []
    # Two rounds over the three instances: 6 attempts, the last one must be refused wherever.
    for p in itertools.islice(itertools.cycle(procs), 8):
        r = login(p, "acme")
        (refused if isinstance(r, str) or r is None else held).append((p, r))
    try:
        assert len(held) == 5, f"admitted {len(held)} of a fleet-wide 5"
        assert [r for _, r in refused] == ["53300"] * 3
        # One closes on an instance; the next login is admitted on a different one.
        first_proxy, first = held.pop(0)
        first.close()
        other = next(p for p in procs if p is not first_proxy)
        again = login(other, "acme")
        assert not isinstance(again, str), f"after a close, login on another instance: {again}"
        held.append((other, again))
        assert login(first_proxy, "acme") == "53300"
        # Another tenant without a rule is not affected.
        free = login(procs[0], "someone_else")
        assert not isinstance(free, str)
        free.close()
        view = procs[0].admin_get("/api/v1/fleet").json()
        assert view["live_instances"] == 3 and not view["degraded"]
        shares = [s for s in view["shares"] if s["tenant"] == "acme"]
        assert shares and shares[0]["limit"] == 5
        env = dict(os.environ, HELIOS_ADMIN_URL=procs[0].admin_url,
                   HELIOS_ADMIN_TOKEN_FILE=str(procs[0].admin_token_file))
        ctl = subprocess.run([str(helios_binary().parent / "heliosctl"), "fleet"],
                             capture_output=True, text=True, timeout=30, env=env)
        assert ctl.returncode == 0, ctl.stderr
        assert "3 live instance(s)" in ctl.stdout and "acme" in ctl.stdout, ctl.stdout
    finally:
        for _, c in held:
            c.close()


def test_units_nobody_uses_are_admitted_where_they_are_wanted(proxy_factory, redis):
    """A 6-connection tenant with one connection on each of three instances: the fleet uses 3 of
    6, so three more logins on one instance are all admitted and the fourth is refused. (Before:
    each instance kept a spare unit of its share and the second extra login got 53300 with two
    units unused in the fleet.)"""
    procs = fleet(proxy_factory, redis, [{"tenant_pattern": "acme", "max_connections": 6}])
    held = [login(p, "acme") for p in procs]
    try:
        assert all(not isinstance(h, str) for h in held), held
        time.sleep(3 * RENEW_S)  # every instance has renewed with its connection counted
        for _ in range(3):
            r = login(procs[0], "acme")
            assert not isinstance(r, str), f"refused with {r} while the fleet uses " \
                f"{len([h for h in held if not isinstance(h, str)])} of 6"
            held.append(r)
        assert login(procs[0], "acme") == "53300"
    finally:
        for h in held:
            if not isinstance(h, str):
                h.close()


def test_one_reuseport_port_three_instances_exactly_five(proxy_factory, redis):
    procs = fleet(proxy_factory, redis, [{"tenant_pattern": "acme", "max_connections": 5}],
                  same_port=True)
    port = procs[0].port
    assert all(p.port == port for p in procs)
    results = [login(procs[0], "acme", port=port) for _ in range(8)]
    held = [r for r in results if not isinstance(r, str)]
    try:
        assert len(held) == 5, results
        assert [r for r in results if isinstance(r, str)] == ["53300"] * 3
        per_instance = [p.metric("helios_proxy_tenant_connections", tenant_id="acme") for p in procs]
        assert sum(per_instance) == 5, per_instance
    finally:
        for c in held:
            c.close()


def test_max_qps_holds_across_three_instances(proxy_factory, redis):
    procs = fleet(proxy_factory, redis,
                  [{"tenant_pattern": "metered", "max_qps": 300, "qps_max_wait": "10s"}])
    runs = [pgbench(p.conninfo(BENCH_USER, "bench", application_name="metered"), clients=4,
                    jobs=1, seconds=13, script="SELECT 1;\n", rate=500, background=True)
            for p in procs]

    def total():
        return sum(p.metric("helios_proxy_tenant_queries_total", tenant_id="metered")
                   for p in procs)

    t0 = time.monotonic()
    time.sleep(2.0)  # the first window: instances converge on their parts
    samples = [(time.monotonic(), total())]
    for _ in range(2):
        time.sleep(5.0 - ((time.monotonic() - t0 - 2.0) % 5.0))
        samples.append((time.monotonic(), total()))
    for r in runs:
        r.result()
    rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(samples, samples[1:])]
    print(f"\nfleet max_qps 300, offered 1,500/s over 3 instances: 5 s windows {rates}")
    for rate in rates:
        assert 270 <= rate <= 330, f"fleet rate {rates} vs max_qps 300 (offered 1,500/s)"


def test_max_active_holds_across_instances_and_rotates(proxy_factory, redis, pg):
    """max_active 2 for a tenant with 3 busy clients on each of 3 instances: PostgreSQL never
    runs more than 2 of its statements at once, and every instance gets turns."""
    procs = fleet(proxy_factory, redis, [{"tenant_pattern": "busy", "max_active": 2}])
    done = [0] * len(procs)
    errors, stop = [], threading.Event()

    def client(i):
        try:
            with psycopg.connect(**procs[i].conninfo(BENCH_USER, "bench",
                                                     application_name="busy").kwargs(),
                                 autocommit=True) as conn:
                while not stop.is_set():
                    conn.execute("SELECT pg_sleep(0.05)")
                    done[i] += 1
        except Exception as e:  # noqa: BLE001 - any client error fails the test
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i % 3,)) for i in range(9)]
    for t in threads:
        t.start()
    peak = 0
    with pg.admin_connect("postgres") as admin:
        end = time.monotonic() + 4
        while time.monotonic() < end:
            n = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                              "'busy' AND state = 'active'").fetchone()[0]
            peak = max(peak, n)
            time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join()
    print(f"\nmax_active 2 over 3 instances: peak active {peak}, statements per instance {done}")
    assert errors == []
    assert peak <= 2, f"{peak} statements of a max_active=2 tenant ran at once"
    # Turns: the instance that waited longest with none gets the next unit (no starvation).
    assert min(done) > 0 and min(done) >= max(done) / 3, done


def test_backends_of_three_instances_stay_within_the_pool_maximum(proxy_factory, redis, pg):
    """A pool of max_connections = 6 on each of three instances under 600 clients: PostgreSQL,
    sampled every 50 ms, never sees more than 6 of its backends (without [fleet]: 18)."""
    procs = fleet(proxy_factory, redis, [{"tenant_pattern": "other", "max_connections": 1}],
                  pool_size=6)
    with BackendSampler(pg, interval=0.05) as sampler:
        runs = [pgbench(p.conninfo(BENCH_USER, "bench", application_name="app"), clients=200,
                        jobs=2, seconds=4, script="SELECT pg_sleep(0.02);\n", background=True,
                        timeout=90)
                for p in procs]
        results = [r.result() for r in runs]
    peak = sampler.max_by_user["bench"]
    print(f"\npool max 6 over 3 instances, 600 clients: peak backends {peak}, "
          f"tps {[round(r.tps) for r in results]}")
    assert all(r.failed == 0 and r.processed > 0 for r in results), [r.errors for r in results]
    assert 0 < peak <= 6, peak


def test_backends_move_to_the_instance_that_needs_them(proxy_factory, redis, pg):
    """A fleet-wide pool of 4: instance A serves 4 concurrent transactions and then sits with 4
    idle backends; instance B then gets 4 concurrent statements. A's share shrinks, its idle
    backends are closed (not kept until their idle_timeout), and B's statements all run within
    acquire_timeout while PostgreSQL never sees more than 4 backends. (Before: A kept its idle
    backends and its share, and every statement on B failed with 53300.)"""
    a, b = fleet(proxy_factory, redis, [{"tenant_pattern": "other", "max_connections": 1}],
                 n=2, pool_size=4, sections={"connection_pool": {"acquire_timeout": "4s"}})

    def burst(p, n, seconds):
        errors = []

        def one():
            try:
                with psycopg.connect(**p.conninfo(BENCH_USER, "bench").kwargs(),
                                     autocommit=True) as conn:
                    conn.execute(f"SELECT pg_sleep({seconds})")
            except Exception as e:  # noqa: BLE001 - counted
                errors.append(repr(e))

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return errors

    with BackendSampler(pg, interval=0.05) as sampler:
        assert burst(a, 4, 0.5) == []
        deadline = time.monotonic() + 5  # the closes are processed
        while a.admin_get("/api/v1/pool/stats").json()["client_connections"] != 0:
            assert time.monotonic() < deadline, "A's clients are still counted after 5 s"
            time.sleep(0.05)
        t0 = time.monotonic()
        errors = burst(b, 4, 0.5)
        took = time.monotonic() - t0
    peak = sampler.max_by_user["bench"]
    over_max = a.metric("helios_proxy_backend_closed_total", reason="over_max")
    print(f"\nA then B, a fleet-wide pool of 4: B's burst took {took:.2f} s, errors {errors}, "
          f"peak backends {peak}, A closed {over_max:.0f} idle backends over its share")
    assert errors == []
    assert peak <= 4, peak
    assert over_max >= 1


def test_killed_instance_returns_its_share_within_the_ttl(proxy_factory, redis):
    procs = fleet(proxy_factory, redis, [{"tenant_pattern": "acme", "max_connections": 5}])
    a, b, c = procs
    held = [login(c, "acme") for _ in range(3)] + [login(a, "acme") for _ in range(2)]
    assert not any(isinstance(h, str) for h in held), held
    c.proc.kill()  # kill -9: its three units are held in Redis until its heartbeat expires
    c.expect_exit = None
    killed = time.monotonic()
    got = []
    while len(got) < 3 and time.monotonic() - killed < TTL_S + 3:
        r = login(b, "acme")
        if not isinstance(r, str):
            got.append(r)
    took = time.monotonic() - killed
    print(f"\nkill -9: the dead instance's 3 units admitted elsewhere after {took:.2f} s "
          f"(instance_ttl {TTL_S} s, renew {RENEW_S} s)")
    try:
        assert len(got) == 3, f"only {len(got)} of the dead instance's 3 units came back"
        # The bound (docs/fleet.md): instance_ttl + 2 renew intervals + one admission_wait.
        assert took <= TTL_S + 2 * RENEW_S + 0.6 + 0.5, took
        assert login(a, "acme") == "53300"  # and no more than the limit
    finally:
        for h in held + got:
            if not isinstance(h, str):
                h.close()


def test_redis_outage_degrades_to_static_shares_and_recovers(proxy_factory, redis):
    """Redis stopped for 10 s under load: no client error, every instance degraded to its
    static share (6 / 3 = 2 connections each), then back to shared enforcement."""
    procs = fleet(proxy_factory, redis, [{"tenant_pattern": "acme", "max_connections": 6}])
    conns = [psycopg.connect(**p.conninfo(BENCH_USER, "bench", application_name="acme").kwargs(),
                             autocommit=True) for p in procs]
    errors, stop = [], threading.Event()

    def load(conn):
        while not stop.is_set():
            try:
                conn.execute("SELECT 1").fetchone()
            except Exception as e:  # noqa: BLE001 - any client error fails the test
                errors.append(repr(e))
                return
            time.sleep(0.01)

    threads = [threading.Thread(target=load, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    try:
        redis.stop()
        stopped = time.monotonic()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not all(
                p.metric("helios_proxy_fleet_degraded") == 1 for p in procs):
            time.sleep(0.05)
        assert all(p.metric("helios_proxy_fleet_degraded") == 1 for p in procs)
        time.sleep(1.0)
        # Static share: 6 / 3 instances = 2 per instance, one already held on each.
        extra = login(procs[0], "acme")
        assert not isinstance(extra, str), extra
        assert login(procs[0], "acme") == "53300"
        extra.close()
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))  # the load runs on
        assert errors == []
        redis.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                p.metric("helios_proxy_fleet_degraded") != 0 for p in procs):
            time.sleep(0.05)
        assert all(p.metric("helios_proxy_fleet_degraded") == 0 for p in procs)
        # Shared enforcement again: the fleet uses 3 of 6, so one instance admits 3 more (its
        # static share would have admitted 1), and no more.
        time.sleep(3 * RENEW_S)
        again = [login(procs[0], "acme") for _ in range(4)]
        try:
            assert [isinstance(r, str) and r for r in again] == [False, False, False, "53300"]
        finally:
            for r in again:
                if not isinstance(r, str):
                    r.close()
        assert all(p.metric("helios_proxy_fleet_renewal_failures_total") > 0 for p in procs)
        for p in procs:
            assert "cannot be reached" in p.stderr_tail(200)
    finally:
        stop.set()
        for t in threads:
            t.join()
        for c in conns:
            c.close()
    assert errors == []


def _self_signed(directory, name):
    key, cert = f"{directory}/{name}.key", f"{directory}/{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_rediss_shares_quotas_over_tls_and_refuses_an_unknown_certificate(proxy_factory, redis,
                                                                           tmp_path):
    """rediss:// (Debian's hiredis has no TLS: the proxy runs hiredis's protocol code over its
    own OpenSSL connection), to a TLS terminator in front of the real redis-server: two
    instances share a 3-connection tenant through it. A third instance that does not trust the
    server's certificate never talks to Redis: it runs degraded on its static share and says
    why in its log."""
    cert, key = _self_signed(tmp_path, "redis")
    other_ca, _ = _self_signed(tmp_path, "other")
    rule = [{"tenant_pattern": "acme", "max_connections": 3}]
    with TlsTerminator(cert, key, redis.port) as tls:
        url = f"rediss://127.0.0.1:{tls.port}"
        procs = fleet(proxy_factory, redis, rule, n=2, redis_url=url, redis_tls_ca_file=cert)
        assert all(p.admin_get("/api/v1/fleet").json()["live_instances"] == 2 for p in procs)
        held = [login(procs[i % 2], "acme") for i in range(4)]
        try:
            assert [isinstance(h, str) and h for h in held] == [False, False, False, "53300"]
        finally:
            for h in held:
                if not isinstance(h, str):
                    h.close()
        assert all(p.metric("helios_proxy_fleet_degraded") == 0 for p in procs)
        assert tls.handshakes >= 2
        # The keys are in the real Redis behind the terminator.
        assert redis.cli("KEYS", "*acme*").strip()

        (stranger,) = fleet(proxy_factory, redis, rule, n=1, redis_url=url,
                            redis_tls_ca_file=other_ca)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and \
                stranger.metric("helios_proxy_fleet_degraded") != 1:
            time.sleep(0.05)
        assert stranger.metric("helios_proxy_fleet_degraded") == 1
        assert "TLS handshake" in stranger.stderr_tail(200), stranger.stderr_tail(20)
        c = login(stranger, "acme")  # its static share still admits
        assert not isinstance(c, str), c
        c.close()
