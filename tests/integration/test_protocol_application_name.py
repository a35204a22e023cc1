"""application_name through the proxy: a client sees what it would see directly. A client that
sent none sees '' (the proxy's backends do not log in under a name of their own), a client that
sent one sees it, and the backend serving a client carries the client's name in
pg_stat_activity (per-tenant attribution, and the max_active checks, count backends by it)."""

from __future__ import annotations

import threading

import psycopg

from harness import APP_USER, ROLES
from harness.wire import RawConn


def _show(conn) -> str:
    return conn.execute("SHOW application_name").fetchone()[0]


def test_client_without_application_name_sees_empty_as_directly(proxy_factory, pg):
    p = proxy_factory(pool_size=1)
    for host, port in ((pg.host, pg.port), ("127.0.0.1", p.port)):
        with RawConn(host, port) as raw:
            status = raw.login(APP_USER, ROLES[APP_USER].password, "app")
            assert status.get("application_name") == "", (port, status)
            rows, errors = raw.simple_query("SHOW application_name")
            assert errors == [] and rows == [[""]], (port, rows, errors)
    # A named client leaves its name on the only backend; the next, nameless client must not
    # see it, nor the proxy's.
    named = psycopg.connect(**p.conninfo(APP_USER, "app", application_name="tenant_named")
                            .kwargs(), autocommit=True)
    assert _show(named) == "tenant_named"
    anon = psycopg.connect(**p.conninfo(APP_USER, "app").kwargs(), autocommit=True)
    assert _show(anon) == ""
    assert _show(named) == "tenant_named"
    # SET and RESET behave as directly: RESET goes back to what the client connected with.
    anon.execute("SET application_name = 'later'")
    assert _show(anon) == "later"
    assert _show(named) == "tenant_named"
    assert _show(anon) == "later"
    anon.execute("RESET application_name")
    assert _show(anon) == ""
    with psycopg.connect(**pg.conninfo(APP_USER, "app"), autocommit=True) as direct:
        direct.execute("SET application_name = 'later'")
        direct.execute("RESET application_name")
        assert _show(direct) == ""
    named.close()
    anon.close()


def test_backend_of_a_named_client_shows_its_name_in_pg_stat_activity(proxy_factory, pg):
    p = proxy_factory(pool_size=2)
    conn = psycopg.connect(**p.conninfo(APP_USER, "app", application_name="tenant_visible")
                           .kwargs(), autocommit=True)
    started = threading.Event()

    def sleeper():
        started.set()
        conn.execute("SELECT pg_sleep(1.5)")

    t = threading.Thread(target=sleeper)
    t.start()
    started.wait(5)
    seen = False
    for _ in range(50):
        rows = pg.query("SELECT application_name FROM pg_stat_activity "
                        "WHERE query = 'SELECT pg_sleep(1.5)' AND state = 'active'", dbname="app")
        if rows:
            assert rows[0][0] == "tenant_visible", rows
            seen = True
            break
        threading.Event().wait(0.05)
    t.join(10)
    conn.close()
    assert seen, "the sleeping statement never showed in pg_stat_activity"
