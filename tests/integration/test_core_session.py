"""Session mode: a client keeps its backend for its whole session; server_reset_query cleans the
backend when the client leaves."""

import pytest

from harness import APP_USER


def _connect(proxy):
    return proxy.connect(APP_USER, "app", prepare_threshold=None)


def test_session_mode_keeps_temp_tables_and_set(proxy_factory):
    proxy = proxy_factory(mode="session", pool_size=2)
    conn = _connect(proxy)
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    conn.execute("SET work_mem = '7MB'")
    conn.execute("SET application_name = 'session_keeper'")
    conn.execute("CREATE TEMP TABLE sess_tmp (id int)")
    for i in range(5):  # separate transactions
        with conn.transaction():
            conn.execute("INSERT INTO sess_tmp VALUES (%s)", (i,))
    assert conn.execute("SELECT count(*), sum(id) FROM sess_tmp").fetchone() == (5, 10)
    assert conn.execute("SHOW work_mem").fetchone() == ("7MB",)
    assert conn.execute("SHOW application_name").fetchone() == ("session_keeper",)
    assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
    # Session-level prepared statements and advisory locks work too.
    conn.execute("PREPARE sess_q(int) AS SELECT $1 * 2")
    assert conn.execute("EXECUTE sess_q(21)").fetchone() == (42,)
    assert conn.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (True,)

    # Another client has its own backend and sees none of it.
    other = _connect(proxy)
    assert other.execute("SELECT pg_backend_pid()").fetchone()[0] != pid
    assert other.execute("SELECT to_regclass('pg_temp.sess_tmp')").fetchone() == (None,)
    assert other.execute("SHOW work_mem").fetchone() != ("7MB",)
    assert other.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (False,)


@pytest.mark.parametrize("reset_query", ["DISCARD ALL", ""])
def test_server_reset_query_runs_when_a_session_client_leaves(proxy_factory, pg, reset_query):
    # One backend, so the second client gets the first client's backend.
    proxy = proxy_factory(mode="session", pool_size=1,
                          connection_pool={"server_reset_query": reset_query})
    a = _connect(proxy)
    pid_a = a.execute("SELECT pg_backend_pid()").fetchone()[0]
    default_work_mem = a.execute("SHOW work_mem").fetchone()[0]
    a.execute("SET work_mem = '7MB'")
    a.execute("CREATE TEMP TABLE reset_tmp (id int)")
    a.execute("PREPARE reset_q AS SELECT 1")
    a.execute("SELECT pg_advisory_lock(777)")
    a.close()

    b = _connect(proxy)
    pid_b = b.execute("SELECT pg_backend_pid()").fetchone()[0]
    if pid_b != pid_a:
        fate = "still exists" if pid_a in {x["pid"] for x in pg.backends()} else "was closed"
        pytest.fail(f"the pool of 1 did not reuse its backend after a session client left "
                    f"(A had pid {pid_a}, B got {pid_b}; A's backend {fate}): cannot check "
                    "the reset")
    work_mem = b.execute("SHOW work_mem").fetchone()[0]
    temp = b.execute("SELECT to_regclass('pg_temp.reset_tmp')").fetchone()[0]
    prepared = b.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
    locks = b.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                      "AND pid = pg_backend_pid()").fetchone()[0]
    if reset_query:
        assert (work_mem, temp, prepared, locks) == (default_work_mem, None, 0, 0)
    else:
        # server_reset_query = "" disables the reset: the state is still there (this also
        # shows the check above can tell the difference).
        assert (work_mem, temp is not None, prepared, locks) == ("7MB", True, 1, 1)
