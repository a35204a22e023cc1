"""Self-checks of the harness pieces the other tests trust (no proxy needed)."""

import tomllib

import pytest

from harness import toml_dumps
from harness.clients import parse_pgbench
from harness.proxy import parse_duration
from harness.scram import ScramClient, parse_verifier, scram_verifier


def test_toml_writer_round_trips():
    doc = {
        "proxy": {"listen_address": "127.0.0.1:6432", "workers": 2, "ratio": 0.25,
                  "enabled": True, "quote": 'a "b" \\ c\n\t', "unicode": "héllo"},
        "metrics": {"histogram_buckets": [0.001, 0.5, 1.0], "names": ["a", "b"]},
        "tenant_quotas": {
            "enabled": True,
            "default": {"max_connections": 0},
            "limits": [{"tenant_pattern": "tenant_*", "max_qps": 100},
                       {"tenant_pattern": "premium_*", "max_qps": 5000, "edge_cidrs": []}],
        },
        "tiers": {"gold tier": {"pool_size": 10}},
        "dropped": None,
    }
    back = tomllib.loads(toml_dumps(doc))
    del doc["dropped"]
    assert back == doc


def test_scram_client_matches_rfc7677_vector():
    c = ScramClient("pencil", nonce="rOprNGfwEbeRWgbNEkqO", user="user")
    assert c.first_message() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    server_first = (b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    assert c.final_message(server_first) == (
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    with pytest.raises(Exception):
        c.verify_server_final(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def test_scram_verifier_shape_and_iterations():
    v = scram_verifier("pw", iterations=1, salt=b"0123456789abcdef")
    it, salt, stored, server = parse_verifier(v)
    assert (it, salt, len(stored), len(server)) == (1, b"0123456789abcdef", 32, 32)
    assert scram_verifier("pw", 1, b"0123456789abcdef") == v
    assert scram_verifier("pw", 2, b"0123456789abcdef") != v


def test_parse_duration():
    assert parse_duration("250ms") == 0.25
    assert parse_duration("1h30m") == 5400
    assert parse_duration(7) == 7 and parse_duration("7") == 7
    with pytest.raises(ValueError):
        parse_duration("5 parsecs")


PGBENCH_OUT = """pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 1
query mode: extended
number of clients: 1000
number of threads: 2
maximum number of tries: 1
duration: 6 s
number of transactions actually processed: 80850
number of failed transactions: 3 (0.004%)
latency average = 66.1 ms
latency stddev = 2.5 ms
initial connection time = 611.63 ms
tps = 14787.123 (without initial connection time)
"""
PGBENCH_ERR = """progress: 1.0 s, 5156.7 tps, lat 0.5 ms stddev 0.1, 0 failed
pgbench: error: client 41 script 0 aborted in command 3 query 0: FATAL:  terminating connection
progress: 2.0 s, 13037.4 tps, lat 0.4 ms stddev 0.1, 3 failed
pgbench: error: Run was aborted; the above results are incomplete.
"""


def test_parse_pgbench():
    r = parse_pgbench(2, PGBENCH_OUT, PGBENCH_ERR, ["pgbench"])
    assert (r.clients, r.processed, r.failed) == (1000, 80850, 3)
    assert r.tps == pytest.approx(14787.123) and r.latency_avg_ms == pytest.approx(66.1)
    assert r.initial_connection_ms == pytest.approx(611.63)
    assert r.aborted_clients == [41] and r.run_aborted and len(r.errors) == 2
    assert r.progress == [(1.0, 5156.7, 0), (2.0, 13037.4, 3)]
    assert not r.clean


def test_parse_prometheus():
    from harness.proxy import parse_prometheus

    text = ('# HELP helios_proxy_tenant_connections Client connections per tenant\n'
            '# TYPE helios_proxy_tenant_connections gauge\n'
            'helios_proxy_tenant_connections{tenant_id="a\\"b",pool="app/app"} 3\n'
            'helios_proxy_acquire_latency_seconds_bucket{le="+Inf"} 2.5e3\n'
            'up 1\n')
    assert parse_prometheus(text) == [
        ("helios_proxy_tenant_connections", {"tenant_id": 'a"b', "pool": "app/app"}, 3.0),
        ("helios_proxy_acquire_latency_seconds_bucket", {"le": "+Inf"}, 2500.0),
        ("up", {}, 1.0),
    ]
