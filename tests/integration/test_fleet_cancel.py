"""Cancel forwarding between fleet instances (issue 16): a CancelRequest that reaches another
instance than the client's (what a load balancer in front of several instances does) is sent on
to the owning instance and cancels the statement there; a random key cancels nothing anywhere;
with Redis down each instance still cancels its own sessions (and keeps forwarding to the
instances it last saw); instances on one SO_REUSEPORT port forward through their own
cancel_address; a cancel for a killed instance is dropped and counted."""

from __future__ import annotations

import socket
import struct
import time
import uuid

import pytest

from harness import BENCH_USER, ROLES
from harness.util import free_port
from harness.wire import RawConn, query_message

pytestmark = [pytest.mark.needs("tenant_quotas"), pytest.mark.timeout(60)]

CANCEL_CODE = 80877102



def two_instances(proxy_factory, redis_url, wait=True, same_port=False, named=False):
    """Two instances sharing a key prefix; same_port: one SO_REUSEPORT port, each with its own
    cancel_address; named: listening on 0.0.0.0, each naming its listener 127.0.0.1 in
    cancel_address (on the listen port: nothing more is listened on)."""
    prefix = "c" + uuid.uuid4().hex[:8]
    procs, cancel_ports = [], []
    for i in range(2):
        f = {"redis_url": redis_url, "instance_id": f"{prefix}-{i}", "key_prefix": prefix,
             "renew_interval": "100ms", "instance_ttl": "1s", "redis_timeout": "200ms"}
        ov = {"fleet": f, "tenant_quotas": {"enabled": True}}
        if named:
            port = free_port()
            ov["proxy"] = {"listen_address": f"0.0.0.0:{port}"}
            f["cancel_address"] = f"127.0.0.1:{port}"
        if same_port:
            cancel_ports.append(free_port(avoid=cancel_ports))
            f["cancel_address"] = f"127.0.0.1:{cancel_ports[-1]}"
            if procs:
                ov["proxy"] = {"listen_address": procs[0].config["proxy"]["listen_address"]}
        procs.append(proxy_factory(ov))
    if wait:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            views = [p.admin_get("/api/v1/fleet").json() for p in procs]
            if all(v["live_instances"] == 2 and v["peer"] and len(v["peers"]) == 1 for v in views):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"instances did not see each other's peer numbers: {views}")
    return procs


def login(p):
    c = RawConn("127.0.0.1", p.port)
    status = c.login(BENCH_USER, ROLES[BENCH_USER].password, "bench",
                     {"application_name": "cancel_test"})
    return c, status["_backend_key"]


def send_cancel(port, pid, secret):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack("!iiII", 16, CANCEL_CODE, pid, secret))
        s.settimeout(5)
        assert s.recv(1) == b"", "a CancelRequest gets no answer"


def sleep_then_cancel(conn, cancel, sleep_s=30):
    """Runs pg_sleep on conn, cancels with `cancel()` once it runs; (sqlstate or None, seconds
    from the cancel to the answer)."""
    conn.send(query_message(f"SELECT pg_sleep({sleep_s})"))
    time.sleep(0.3)  # the statement is running on a backend
    t0 = time.monotonic()
    cancel()
    ex = conn.read_response(timeout=5)
    errs = [m.sqlstate for m in ex.messages if m.kind == b"E"]
    return (errs[0] if errs else None), time.monotonic() - t0


def fleet_view(p):
    return p.admin_get("/api/v1/fleet").json()


def test_cancel_sent_to_the_other_instance_cancels_the_statement(proxy_factory, redis):
    a, b = two_instances(proxy_factory, redis.url, named=True)
    va, vb = fleet_view(a), fleet_view(b)
    assert va["peer"] != vb["peer"]
    assert vb["peers"][0]["peer"] == va["peer"]
    assert vb["peers"][0]["cancel_address"] == f"127.0.0.1:{a.port}"
    conn, (pid, secret) = login(a)
    try:
        assert (pid >> 22) & 0xFF == va["peer"], "the key carries the owner's peer number"
        via_b, via_a = [], []
        for _ in range(5):
            state, took = sleep_then_cancel(conn, lambda: send_cancel(b.port, pid, secret))
            assert state == "57014", f"expected the statement cancelled, got {state}"
            assert took < 2.0, f"cancel via the other instance took {took:.2f}s"
            via_b.append(took * 1000)
            state, took = sleep_then_cancel(conn, lambda: send_cancel(a.port, pid, secret))
            assert state == "57014"
            via_a.append(took * 1000)
        print("\ncancel to 57014, ms: through the other instance "
              f"{[round(x, 1) for x in sorted(via_b)]}, through the owner "
              f"{[round(x, 1) for x in sorted(via_a)]}")
        rows, errors = conn.simple_query("SELECT 41 + 1")
        assert not errors and rows == [["42"]], "the client's connection keeps working"
    finally:
        conn.close()
    assert b.metric("helios_proxy_fleet_cancels_forwarded_total") == 5
    assert a.metric("helios_proxy_fleet_cancels_received_total") == 5
    # The owner handled the forwarded request itself: it forwarded nothing.
    assert a.metric("helios_proxy_fleet_cancels_forwarded_total") == 0


def test_random_key_cancels_nothing_anywhere(proxy_factory, redis):
    a, b = two_instances(proxy_factory, redis.url)
    conn, (pid, secret) = login(a)
    try:
        conn.send(query_message("SELECT pg_sleep(1.5)"))
        time.sleep(0.3)
        # The right process id (so it is forwarded to A) with a wrong secret; then a process id
        # naming a peer nobody holds; then one naming B itself.
        send_cancel(b.port, pid, secret ^ 0x5A5A5A5A)
        send_cancel(b.port, (pid & ~(0xFF << 22)) | (200 << 22), secret)
        send_cancel(b.port, (pid & ~(0xFF << 22)) | (fleet_view(b)["peer"] << 22), secret)
        ex = conn.read_response(timeout=5)
        assert not [m for m in ex.messages if m.kind == b"E"], ex.describe()
        assert any(m.kind == b"Z" for m in ex.messages), "the statement ran to its end"
    finally:
        conn.close()
    assert b.metric("helios_proxy_fleet_cancels_forwarded_total") == 1
    assert b.metric("helios_proxy_fleet_cancels_dropped_total", reason="unknown_peer") == 1
    assert a.metric("helios_proxy_fleet_cancels_received_total") == 1


def test_redis_down_each_instance_still_cancels_its_own(proxy_factory, redis):
    a, b = two_instances(proxy_factory, redis.url)
    redis.stop()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not fleet_view(a)["degraded"]:
        time.sleep(0.05)
    assert fleet_view(a)["degraded"]
    conn, (pid, secret) = login(a)
    try:
        state, _ = sleep_then_cancel(conn, lambda: send_cancel(a.port, pid, secret))
        assert state == "57014", "own session cancelled with Redis down"
        # The instances last seen stay reachable: a cancel through B still arrives.
        state, took = sleep_then_cancel(conn, lambda: send_cancel(b.port, pid, secret))
        assert state == "57014" and took < 2.0, (state, took)
        rows, errors = conn.simple_query("SELECT 1")
        assert not errors and rows == [["1"]]
    finally:
        conn.close()


def test_redis_never_reached_cancels_stay_local(proxy_factory):
    a, b = two_instances(proxy_factory, f"redis://127.0.0.1:{free_port()}", wait=False)
    conn, (pid, secret) = login(a)
    try:
        assert (pid >> 22) & 0xFF == 0, "no peer number without Redis"
        state, _ = sleep_then_cancel(conn, lambda: send_cancel(a.port, pid, secret))
        assert state == "57014"
        rows, errors = conn.simple_query("SELECT 1")
        assert not errors and rows == [["1"]]
    finally:
        conn.close()


def test_one_reuseport_port_each_instance_with_its_own_cancel_address(proxy_factory, redis):
    a, b = two_instances(proxy_factory, redis.url, same_port=True)
    port = a.port
    assert b.port == port
    addresses = {fleet_view(p)["cancel_address"] for p in (a, b)}
    assert len(addresses) == 2 and all(x != f"127.0.0.1:{port}" for x in addresses), addresses

    def total(name):
        return sum(p.metric(name) for p in (a, b))

    conn, (pid, secret) = login(a)  # lands on either instance
    try:
        # Each cancel to the shared port lands on either instance too: repeat until one had to
        # be forwarded (1 in 2 per try); every one must cancel.
        for i in range(20):
            state, took = sleep_then_cancel(conn, lambda: send_cancel(port, pid, secret))
            assert state == "57014" and took < 2.0, (i, state, took)
            if total("helios_proxy_fleet_cancels_forwarded_total") >= 1:
                break
        assert total("helios_proxy_fleet_cancels_forwarded_total") >= 1
        assert total("helios_proxy_fleet_cancels_received_total") == \
            total("helios_proxy_fleet_cancels_forwarded_total")
        rows, errors = conn.simple_query("SELECT 1")
        assert not errors and rows == [["1"]]
    finally:
        conn.close()


def test_cancel_for_a_killed_instance_is_dropped_and_the_other_goes_on(proxy_factory, redis):
    a, b = two_instances(proxy_factory, redis.url)
    conn, (pid, secret) = login(a)
    conn.close()
    a.proc.kill()  # kill -9: B still lists it until its heartbeat expires
    a.expect_exit = None
    a.proc.wait(timeout=10)
    # Its listener can outlive the process for a moment (the ring's teardown): until it refuses.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", a.port), timeout=1).close()
            time.sleep(0.02)
        except ConnectionRefusedError:
            break
    send_cancel(b.port, pid, secret)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and \
            b.metric("helios_proxy_fleet_cancels_dropped_total", reason="unreachable") < 1:
        time.sleep(0.05)
    assert b.metric("helios_proxy_fleet_cancels_dropped_total", reason="unreachable") == 1
    assert b.metric("helios_proxy_fleet_cancels_forwarded_total") == 0
    other, _ = login(b)
    try:
        rows, errors = other.simple_query("SELECT 1")
        assert not errors and rows == [["1"]]
    finally:
        other.close()
