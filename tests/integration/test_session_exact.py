"""Session state in transaction pooling is what PostgreSQL says it is (issue 13).

Each test runs a sequence through the proxy in transaction mode with a small pool, so clients
share backends, and asserts what PostgreSQL itself gives for the same sequence (computed on a
direct connection where the value depends on the server). The proxy asks the backend at the end
of a lease that touched session-shaped state (pg_settings, pg_locks, pg_my_temp_schema(),
pg_listening_channels(), pg_prepared_statements, pg_cursors) and adopts the answer; plain
transactions never pay for it (helios_proxy_session_probes_total)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as pgerr

from harness import APP_USER, BENCH_USER, pgbench, wait_until

pytestmark = pytest.mark.needs("metrics")

SCHEMA = "se_leak_s"


@pytest.fixture(scope="module")
def leak_schema(pg):
    pg.query(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA};"
             f"GRANT USAGE ON SCHEMA {SCHEMA} TO PUBLIC", dbname="app")
    return SCHEMA


def _connect(proxy, **kw):
    kw.setdefault("prepare_threshold", None)
    return proxy.connect(APP_USER, "app", **kw)


def _direct(pg, **kw):
    return psycopg.connect(autocommit=True, **pg.conninfo(APP_USER, "app"), **kw)


def _show(conn, name: str) -> str:
    return conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]


def _pid(conn) -> int:
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def _run(conn, statements: list[str]) -> None:
    """Each statement as its own simple Query (like psql), errors ignored (like psql without
    ON_ERROR_STOP): what matters is the state the sequence leaves."""
    for sql in statements:
        try:
            conn.execute(sql)
        except psycopg.Error:
            pass


def _probes(proxy) -> float:
    return proxy.metric("helios_proxy_session_probes_total")


def _pinned(proxy) -> float:
    return proxy.metric("helios_proxy_pinned_clients")


def _no_internal_failures(proxy) -> None:
    tail = proxy.stderr_tail(400)
    assert "proxy-internal statement failed" not in tail, tail


# ---------------------------------------------------------------------------------------------
# 1. RESET TIME ZONE returns to the client's startup zone.


@pytest.mark.timeout(60)
def test_reset_time_zone_returns_to_the_startup_zone(proxy_factory, pg):
    proxy = proxy_factory(mode="transaction", pool_size=1)
    opts = "-c TimeZone=Asia/Tokyo"
    with _direct(pg, options=opts) as d:
        _run(d, ["SET TIME ZONE 'America/New_York'", "RESET TIME ZONE"])
        expected = _show(d, "TimeZone")
    with _direct(pg) as d:
        server_default = _show(d, "TimeZone")
    assert expected == "Asia/Tokyo"

    a = _connect(proxy, options=opts)
    b = _connect(proxy)
    _run(a, ["SET TIME ZONE 'America/New_York'", "RESET TIME ZONE"])
    assert _show(a, "TimeZone") == expected
    assert _show(b, "TimeZone") == server_default  # the only backend: A's zone did not follow
    assert _show(a, "TimeZone") == expected
    _run(a, ["SET TIME ZONE 'America/New_York'", "RESET ALL"])
    assert _show(b, "TimeZone") == server_default
    assert _show(a, "TimeZone") == expected
    _no_internal_failures(proxy)


# ---------------------------------------------------------------------------------------------
# 2. Every form of SET TIME ZONE is carried (INTERVAL, LOCAL, DEFAULT).


@pytest.mark.timeout(60)
@pytest.mark.parametrize("statements", [
    ["SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE"],
    ["SET TIME ZONE 'America/New_York'", "SET TIME ZONE LOCAL"],
    ["SET TIME ZONE 'America/New_York'", "SET TIME ZONE DEFAULT"],
    ["SET TIME ZONE -7"],
], ids=["interval", "local", "default", "number"])
def test_every_time_zone_form_is_carried(proxy_factory, pg, statements):
    proxy = proxy_factory(mode="transaction", pool_size=1)
    opts = "-c TimeZone=Asia/Tokyo"
    with _direct(pg, options=opts) as d:
        _run(d, statements)
        expected = _show(d, "TimeZone")
    with _direct(pg) as d:
        server_default = _show(d, "TimeZone")

    a = _connect(proxy, options=opts)
    b = _connect(proxy)
    _run(a, statements)
    assert _show(b, "TimeZone") == server_default  # the backend went to B in between
    assert _show(a, "TimeZone") == expected  # and A's zone was replayed on it
    assert _show(b, "TimeZone") == server_default
    _no_internal_failures(proxy)


# ---------------------------------------------------------------------------------------------
# 3. A temp table created by schema (pg_temp.x) pins like CREATE TEMP TABLE.


@pytest.mark.timeout(60)
def test_schema_qualified_temp_table_pins(proxy_factory):
    proxy = proxy_factory(mode="transaction", pool_size=2)
    a = _connect(proxy)
    _run(a, ["CREATE TABLE pg_temp.a_private(secret text)",
             "INSERT INTO pg_temp.a_private VALUES ('only for A')"])
    wait_until(lambda: _pinned(proxy) == 1, timeout=3, what="A pinned")
    b = _connect(proxy)
    for _ in range(3):  # whichever backend B gets, it is not A's
        with pytest.raises(pgerr.UndefinedTable):
            b.execute("SELECT secret FROM pg_temp.a_private")
    assert a.execute("SELECT secret FROM pg_temp.a_private").fetchone() == ("only for A",)
    # Dropped again: A is free to move (the probe sees no temp objects).
    a.execute("DROP TABLE pg_temp.a_private")
    wait_until(lambda: _pinned(proxy) == 0, timeout=3, what="A unpinned")


@pytest.mark.timeout(60)
def test_temp_table_made_by_a_function_pins(proxy_factory, pg):
    pg.query("CREATE OR REPLACE FUNCTION se_make_temp() RETURNS void LANGUAGE plpgsql AS "
             "$$BEGIN CREATE TEMP TABLE se_fn_tmp(v int); END$$;"
             "GRANT EXECUTE ON FUNCTION se_make_temp() TO PUBLIC", dbname="app")
    proxy = proxy_factory(mode="transaction", pool_size=2)
    a = _connect(proxy)
    a.execute("SELECT se_make_temp()")
    wait_until(lambda: _pinned(proxy) == 1, timeout=3, what="A pinned")
    b = _connect(proxy)
    assert b.execute("SELECT to_regclass('pg_temp.se_fn_tmp')").fetchone() == (None,)
    assert a.execute("SELECT to_regclass('pg_temp.se_fn_tmp')").fetchone() != (None,)


# ---------------------------------------------------------------------------------------------
# 4. Multi-row advisory locks: the backend never goes back to the pool holding one.


def _advisory_held(pg, key: int) -> int:
    return pg.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                    (key,))[0][0]


@pytest.mark.timeout(60)
def test_multi_row_advisory_lock_pins_and_is_released_on_leave(proxy_factory, pg):
    proxy = proxy_factory(mode="transaction", pool_size=1)
    a = _connect(proxy)
    a.execute("SELECT pg_advisory_lock(k) FROM generate_series(100, 101) k")
    a.execute("SELECT pg_advisory_unlock(100)")
    wait_until(lambda: _pinned(proxy) == 1, timeout=3, what="A pinned (still holds 101)")
    assert _advisory_held(pg, 101) == 1
    a.close()
    wait_until(lambda: _advisory_held(pg, 101) == 0, timeout=5,
               what="lock 101 released when A left")
    b = _connect(proxy)
    assert b.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                     "AND pid = pg_backend_pid()").fetchone() == (0,)
    assert b.execute("SELECT pg_try_advisory_lock(101)").fetchone() == (True,)
    b.execute("SELECT pg_advisory_unlock_all()")


# ---------------------------------------------------------------------------------------------
# 5. Savepoints and AND CHAIN.


@pytest.mark.timeout(60)
def test_set_before_a_rolled_back_savepoint_is_carried(proxy_factory, pg, leak_schema):
    proxy = proxy_factory(mode="transaction", pool_size=1)
    seq = ["BEGIN", f"SET search_path TO {leak_schema}", "SAVEPOINT sp",
           "ROLLBACK TO SAVEPOINT sp", "COMMIT"]
    with _direct(pg) as d:
        default = _show(d, "search_path")
        _run(d, seq)
        expected = _show(d, "search_path")
    a = _connect(proxy)
    b = _connect(proxy)
    _run(a, seq)
    assert _show(b, "search_path") == default
    assert _show(a, "search_path") == expected
    assert _show(b, "search_path") == default


@pytest.mark.timeout(60)
def test_set_after_a_rolled_back_savepoint_is_not_carried(proxy_factory, pg):
    proxy = proxy_factory(mode="transaction", pool_size=1)
    seq = ["BEGIN", "SAVEPOINT sp", "SET search_path TO s2", "SELECT 1/0",
           "ROLLBACK TO SAVEPOINT sp", "COMMIT"]
    with _direct(pg) as d:
        _run(d, seq)
        expected = _show(d, "search_path")
    a = _connect(proxy)
    b = _connect(proxy)
    _run(a, seq)
    b.execute("SELECT 1")  # the backend serves B in between
    assert _show(a, "search_path") == expected
    assert _show(b, "search_path") == expected


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seq", [
    ["BEGIN", "SET statement_timeout TO '100ms'", "COMMIT AND CHAIN", "ROLLBACK"],
    ["BEGIN", "ROLLBACK AND CHAIN", "SET statement_timeout TO '100ms'", "COMMIT"],
    ["BEGIN", "SET statement_timeout TO '100ms'", "ROLLBACK AND CHAIN", "COMMIT"],
], ids=["commit-and-chain", "rollback-and-chain", "rolled-back-by-chain"])
def test_and_chain_settles_the_transaction(proxy_factory, pg, seq):
    proxy = proxy_factory(mode="transaction", pool_size=1)
    with _direct(pg) as d:
        _run(d, seq)
        expected = _show(d, "statement_timeout")
    a = _connect(proxy)
    b = _connect(proxy)
    _run(a, seq)
    b.execute("SELECT pg_sleep(0.3)")  # an innocent client on the same backend: not cancelled
    assert _show(b, "statement_timeout") == "0"
    assert _show(a, "statement_timeout") == expected


@pytest.mark.timeout(60)
def test_set_config_inside_a_function_is_carried(proxy_factory, pg, leak_schema):
    pg.query("CREATE OR REPLACE FUNCTION se_set_path() RETURNS void LANGUAGE sql AS "
             f"$$SELECT set_config('search_path', '{leak_schema}', false)$$;"
             "GRANT EXECUTE ON FUNCTION se_set_path() TO PUBLIC", dbname="app")
    proxy = proxy_factory(mode="transaction", pool_size=1)
    with _direct(pg) as d:
        default = _show(d, "search_path")
    a = _connect(proxy)
    b = _connect(proxy)
    a.execute("SELECT se_set_path()")
    assert _show(b, "search_path") == default
    assert _show(a, "search_path") == leak_schema
    assert _show(b, "search_path") == default


@pytest.mark.timeout(60)
def test_do_block_set_is_carried(proxy_factory, pg, leak_schema):
    proxy = proxy_factory(mode="transaction", pool_size=1)
    with _direct(pg) as d:
        default = _show(d, "search_path")
    a = _connect(proxy)
    b = _connect(proxy)
    a.execute(f"DO $$BEGIN PERFORM set_config('search_path', '{leak_schema}', false); END$$")
    assert _show(b, "search_path") == default
    assert _show(a, "search_path") == leak_schema


# ---------------------------------------------------------------------------------------------
# Cost: plain transactions never probe; a SET costs one probe per lease.


@pytest.mark.timeout(60)
def test_plain_transactions_do_not_probe(proxy_factory, pg):
    """Plain queries, DML and SET/RESET of carried parameters are exact from their text: no
    probe. What the text cannot show for certain costs one probe per lease."""
    pg.query("CREATE TABLE IF NOT EXISTS se_plain (v int); GRANT ALL ON se_plain TO PUBLIC",
             dbname="app")
    proxy = proxy_factory(mode="transaction", pool_size=2)
    a = _connect(proxy)
    before = _probes(proxy)
    a.execute("SELECT 1")
    a.execute("SELECT count(*), max(v) FROM (VALUES (1), (2)) t(v)")
    a.execute("BEGIN")
    a.execute("SELECT now(), lower('X'), coalesce(NULL, 1)")
    a.execute("INSERT INTO se_plain (v) VALUES (1)")
    a.execute("COMMIT")
    a.execute("SET search_path TO public")
    a.execute("RESET search_path")
    assert _probes(proxy) == before
    _run(a, ["BEGIN", "SAVEPOINT sp", "RELEASE sp", "COMMIT"])
    wait_until(lambda: _probes(proxy) == before + 1, timeout=3, what="one probe")
    a.execute("SELECT 1")
    assert _probes(proxy) == before + 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", ["simple", "extended", "prepared"])
@pytest.mark.parametrize("builtin", ["select-only", "tpcb-like"])
def test_pgbench_never_probes(proxy_factory, protocol, builtin):
    proxy = proxy_factory(mode="transaction", pool_size=4)
    before = _probes(proxy)
    r = pgbench(proxy.conninfo(BENCH_USER, "bench"), clients=4, jobs=2, seconds=2,
                builtin=builtin, protocol=protocol)
    assert r.clean, r.describe()
    assert _probes(proxy) == before


# ---------------------------------------------------------------------------------------------
# Backends go back clean; state found only by the probe pins and unpins.


@pytest.mark.timeout(60)
def test_client_leaving_right_after_hidden_state_leaves_a_clean_backend(proxy_factory):
    proxy = proxy_factory(mode="transaction", pool_size=1)
    for _ in range(3):
        a = _connect(proxy)
        a.execute("DO $$BEGIN PERFORM set_config('enable_seqscan', 'off', false); "
                  "PERFORM pg_advisory_lock(90301); END$$")
        a.close()  # at once: the probe may still be on its way
        b = _connect(proxy)
        assert _show(b, "enable_seqscan") == "on"
        assert b.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                         "AND pid = pg_backend_pid()").fetchone() == (0,)
        b.close()


@pytest.mark.timeout(60)
def test_untracked_setting_made_by_a_function_pins_until_reset(proxy_factory, pg):
    pg.query("CREATE OR REPLACE FUNCTION se_seqscan_off() RETURNS void LANGUAGE sql AS "
             "$$SELECT set_config('enable_seqscan', 'off', false)$$;"
             "GRANT EXECUTE ON FUNCTION se_seqscan_off() TO PUBLIC", dbname="app")
    proxy = proxy_factory(mode="transaction", pool_size=2)
    a = _connect(proxy)
    a.execute("SELECT se_seqscan_off()")
    wait_until(lambda: _pinned(proxy) == 1, timeout=3, what="A pinned")
    b = _connect(proxy)
    for _ in range(3):
        assert _show(b, "enable_seqscan") == "on"
    assert _show(a, "enable_seqscan") == "off"
    a.execute("RESET enable_seqscan")
    wait_until(lambda: _pinned(proxy) == 0, timeout=3, what="A unpinned")


@pytest.mark.timeout(60)
def test_pin_found_by_the_probe_is_kept_under_pin_policy_error(proxy_factory, pg):
    """pin_policy = "error" refuses what the text shows; state only the server shows cannot be
    refused after the fact: it pins (with a warning) rather than reach another client."""
    pg.query("CREATE OR REPLACE FUNCTION se_make_temp2() RETURNS void LANGUAGE plpgsql AS "
             "$$BEGIN CREATE TEMP TABLE se_fn_tmp2(v int); END$$;"
             "GRANT EXECUTE ON FUNCTION se_make_temp2() TO PUBLIC", dbname="app")
    proxy = proxy_factory(mode="transaction", pool_size=2,
                          connection_pool={"pin_policy": "error"})
    a = _connect(proxy)
    a.execute("SELECT se_make_temp2()")
    wait_until(lambda: _pinned(proxy) == 1, timeout=3, what="A pinned")
    b = _connect(proxy)
    for _ in range(3):
        assert b.execute("SELECT to_regclass('pg_temp.se_fn_tmp2')").fetchone() == (None,)
