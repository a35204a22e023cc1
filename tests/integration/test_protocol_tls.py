"""TLS (issue 7): clients reach the proxy over TLS, and the proxy reaches a PostgreSQL that runs
with ssl = on and a self-signed certificate made here. No kTLS on this kernel: TLS is terminated
in user space; TLS leases take the user-space data path."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile

import psycopg
import pytest

from harness import APP_USER, BENCH_USER, PgCluster, ProxyError, pgbench, start_proxy
from harness.util import chown_postgres

pytestmark = pytest.mark.needs("tls")


def make_cert(directory: str, name: str, cn: str = "localhost") -> tuple[str, str]:
    crt, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "2", "-subj", f"/CN={cn}",
                    "-addext", f"subjectAltName=DNS:{cn}"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o600)
    return crt, key


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="helios-tls-")
    yield {"dir": d, "proxy": make_cert(d, "proxy"), "server": make_cert(d, "server"),
           "other": make_cert(d, "other")}
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_pg(certs):
    """A cluster with ssl = on and its own certificate (PostgreSQL enables TLS on reload)."""
    c = PgCluster()
    c.start()
    try:
        crt, key = certs["server"]
        for src, dst in ((crt, "server.crt"), (key, "server.key")):
            path = os.path.join(str(c.datadir), dst)
            shutil.copy(src, path)
            chown_postgres(path)
        os.chmod(os.path.join(str(c.datadir), "server.key"), 0o600)
        c.query("ALTER SYSTEM SET ssl = on")
        c.query("SELECT pg_reload_conf()")
        c.pgbench_init("bench", scale=1)
        yield c
    finally:
        c.stop()


def proxy_tls(certs, mode="allow"):
    crt, key = certs["proxy"]
    return {"tls": {"client_tls_mode": mode, "cert_file": crt, "key_file": key}}


def test_psql_over_tls_to_the_proxy(proxy_factory, certs):
    p = proxy_factory(proxy_tls(certs))
    with psycopg.connect(**p.conninfo(APP_USER, "app", sslmode="require").kwargs()) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.pgconn.ssl_in_use == 1
        # Large rows both ways through TLS.
        big = "x" * 300_000
        assert conn.execute("SELECT length(%s::text)", (big,)).fetchone() == (300_000,)
        n = conn.execute("SELECT count(*) FROM (SELECT repeat('y', 1000) FROM generate_series(1, 20000)) s").fetchone()
        assert n == (20000,)
    # Plaintext clients still welcome when the mode is "allow".
    with psycopg.connect(**p.conninfo(APP_USER, "app", sslmode="disable").kwargs()) as conn:
        assert not conn.pgconn.ssl_in_use
    r = pgbench(p.conninfo(BENCH_USER, "bench", sslmode="require"), clients=8, jobs=2, seconds=3,
                select_only=True, timeout=60)
    assert r.failed == 0 and r.clean and r.processed > 100, r.describe()


def test_client_tls_required(proxy_factory, certs):
    p = proxy_factory(proxy_tls(certs, "require"))
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(**p.conninfo(APP_USER, "app", sslmode="disable").kwargs())
    assert "client_tls_mode = require" in str(ei.value)
    with psycopg.connect(**p.conninfo(APP_USER, "app", sslmode="require").kwargs()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_channel_binding_is_refused_clearly(proxy_factory, certs):
    p = proxy_factory(proxy_tls(certs))
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(**p.conninfo(APP_USER, "app", sslmode="require",
                                     channel_binding="require").kwargs())
    assert "channel binding" in str(ei.value)


def _server_cert_der(host: str, port: int) -> bytes:
    """The certificate the proxy presents, read the way a client sees it (SSLRequest first)."""
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(struct.pack("!ii", 8, 80877103))
    assert s.recv(1) == b"S"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with ctx.wrap_socket(s) as t:
        return t.getpeercert(binary_form=True)


def test_client_certificate_reloaded_on_reload(proxy_factory, certs):
    d = tempfile.mkdtemp(prefix="helios-tls-reload-")
    try:
        crt, key = os.path.join(d, "p.crt"), os.path.join(d, "p.key")
        shutil.copy(certs["proxy"][0], crt)
        shutil.copy(certs["proxy"][1], key)
        p = proxy_factory({"tls": {"client_tls_mode": "allow", "cert_file": crt, "key_file": key}})
        before = _server_cert_der("127.0.0.1", p.port)
        held = psycopg.connect(**p.conninfo(APP_USER, "app", sslmode="require").kwargs())
        shutil.copy(certs["other"][0], crt)
        shutil.copy(certs["other"][1], key)
        r = p.admin_post("/api/v1/reload")  # synchronous (SIGHUP would be asynchronous)
        assert r.status_code == 200, r.text
        after = _server_cert_der("127.0.0.1", p.port)
        assert before != after
        # The session opened before the reload goes on with its old certificate.
        assert held.execute("SELECT 1").fetchone() == (1,)
        held.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("sslmode", ["require", "verify-full"])
def test_proxy_reaches_postgres_over_tls(tls_pg, certs, sslmode):
    cfg = {"backend": {"sslmode": sslmode, "host": "localhost"}}
    if sslmode == "verify-full":
        cfg["backend"]["sslrootcert"] = certs["server"][0]
    p = start_proxy(tls_pg, cfg)
    try:
        with psycopg.connect(**p.conninfo(APP_USER, "app").kwargs()) as conn:
            # The proxy's own backend connection is encrypted.
            row = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
            assert row[0] is True, row
        r = pgbench(p.conninfo(BENCH_USER, "bench"), clients=4, jobs=2, seconds=2,
                    select_only=True, timeout=60)
        assert r.failed == 0 and r.processed > 50, r.describe()
    finally:
        p.stop()
        p.cleanup()


def test_verify_full_refuses_an_unknown_server_certificate(tls_pg, certs):
    cfg = {"backend": {"sslmode": "verify-full", "host": "localhost",
                       "sslrootcert": certs["other"][0]}}
    p = start_proxy(tls_pg, cfg, start=False)
    try:
        # The proxy runs, but cannot log into PostgreSQL: its readiness query fails with why.
        with pytest.raises(ProxyError) as ei:
            p.start(timeout=8)
        assert "certificate verify failed" in str(ei.value)
    finally:
        p.cleanup()
