"""SSLRequest and GSSENCRequest are answered 'N' (no TLS/GSS yet), and the client continues with
a normal startup on the same socket; a CancelRequest with an unknown key does nothing."""

import struct

import pytest

from harness import APP_USER, ROLES, psql
from harness.wire import CANCEL_REQUEST_CODE, RawConn, gssenc_request, ssl_request


@pytest.mark.parametrize("requests", [["ssl"], ["gssenc"], ["gssenc", "ssl"]])
def test_encryption_requests_get_N_then_startup_works(proxy, requests):
    with RawConn(proxy.host, proxy.port) as c:
        for r in requests:
            c.send(ssl_request() if r == "ssl" else gssenc_request())
            assert c.read_byte(5) == b"N", f"{r} request not answered 'N'"
        status = c.login(APP_USER, ROLES[APP_USER].password, "app")
        assert status["_txn_status"] == "I"
        rows, errors = c.simple_query("SELECT current_user, 1 + 1")
        assert not errors and rows == [[APP_USER, "2"]]


def test_libpq_sslmodes(proxy):
    ci = proxy.conninfo()
    for mode in ("disable", "allow", "prefer"):
        r = psql(ci.with_(sslmode=mode), "SELECT 'ok'")
        assert r.ok and r.rows == [["ok"]], (mode, r.stderr)
    r = psql(ci.with_(sslmode="require"), "SELECT 'ok'")
    assert r.rc == 2 and "does not support SSL" in r.stderr, r.stderr


def test_cancel_request_with_unknown_key_is_harmless(proxy):
    conn = proxy.connect(APP_USER, "app", prepare_threshold=None)
    with RawConn(proxy.host, proxy.port) as c:
        c.send(struct.pack("!IIII", 16, CANCEL_REQUEST_CODE, 12345, 67890))
        ex = c.read_until_close(5)
    assert ex.closed and not ex.messages, ex.describe()
    assert conn.execute("SELECT pg_sleep(0.2), 'not cancelled'").fetchone() == ("",
                                                                                 "not cancelled")
