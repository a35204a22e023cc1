"""Cancel requests through the proxy reach the backend running the client's query."""

import signal
import subprocess
import threading
import time

import psycopg
import pytest
from psycopg import errors as pgerr

from harness import APP_USER
from harness.clients import client_env
from harness.util import pg_bin


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_psycopg_cancel_of_pg_sleep(proxy_factory, mode):
    proxy = proxy_factory(mode=mode, pool_size=4)
    conn = proxy.connect(APP_USER, "app", prepare_threshold=None)
    other = proxy.connect(APP_USER, "app", prepare_threshold=None)
    other_result = {}

    def other_client():
        t0 = time.monotonic()
        try:
            other_result["v"] = other.execute("SELECT pg_sleep(1.5), 'other'").fetchone()
        except Exception as e:  # noqa: BLE001
            other_result["error"] = e
        other_result["t"] = time.monotonic() - t0

    th = threading.Thread(target=other_client)
    th.start()
    timer = threading.Timer(0.5, conn.cancel)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(pgerr.QueryCanceled) as ei:
        conn.execute("SELECT pg_sleep(10)")
    elapsed = time.monotonic() - t0
    timer.join()
    assert ei.value.sqlstate == "57014"
    assert elapsed < 2.5, f"cancel took effect after {elapsed:.2f}s"
    # The cancelled client goes on; the other client's query was not touched.
    assert conn.execute("SELECT 'after cancel'").fetchone() == ("after cancel",)
    th.join(10)
    assert other_result.get("v") == ("", "other"), other_result


@pytest.mark.timeout(60)
def test_cancel_inside_a_transaction(proxy_factory):
    proxy = proxy_factory(mode="transaction", pool_size=2)
    conn = proxy.connect(APP_USER, "app", prepare_threshold=None)
    conn.execute("BEGIN")
    conn.execute("SELECT 1")
    threading.Timer(0.5, conn.cancel).start()
    with pytest.raises(pgerr.QueryCanceled):
        conn.execute("SELECT pg_sleep(10)")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT 2").fetchone() == (2,)


@pytest.mark.timeout(60)
def test_psql_ctrl_c_cancels(proxy_factory):
    proxy = proxy_factory(mode="transaction", pool_size=2)
    ci = proxy.conninfo(APP_USER, "app")
    argv = [pg_bin("psql"), "-X", "-v", "VERBOSITY=verbose", "-c", "SELECT pg_sleep(10)"]
    p = subprocess.Popen(argv, env=client_env(ci, None), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # let it log in and start sleeping
        assert p.poll() is None, p.communicate()
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)  # what Ctrl-C does: psql sends a CancelRequest
        out, err = p.communicate(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert "57014" in err and "canceling statement due to user request" in err, err
    assert elapsed < 2.0, f"psql returned {elapsed:.2f}s after Ctrl-C"
