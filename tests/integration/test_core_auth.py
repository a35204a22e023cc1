"""Logging in through the proxy with the database's own users and passwords (no auth file: the
proxy looks the secret up with auth_query through a SECURITY DEFINER function)."""

import asyncio

import asyncpg
import pytest

from harness import APP_USER, MD5_USER, ROLES, psql
from harness.wire import LoginError, RawConn


def test_psql_scram_login_and_queries(proxy):
    ci = proxy.conninfo(APP_USER, "app")
    r = psql(ci, "SELECT current_user, current_database(), 6 * 7")
    assert r.ok, r.stderr
    assert r.rows == [[APP_USER, "app", "42"]]

    r = psql(ci, args=["-c", "DROP TABLE IF EXISTS auth_t",
                       "-c", "CREATE TABLE auth_t (id int PRIMARY KEY, v text)",
                       "-c", "INSERT INTO auth_t SELECT g, 'row ' || g FROM generate_series(1, 100) g",
                       "-c", "SELECT count(*), min(v), max(id) FROM auth_t"])
    assert r.ok, r.stderr
    assert r.rows[-1] == ["100", "row 1", "100"]

    # The backend really logged in as the client's user (pools are keyed by (database, user)).
    r = psql(ci, "SELECT usename, datname FROM pg_stat_activity WHERE pid = pg_backend_pid()")
    assert r.rows == [[APP_USER, "app"]]


def test_raw_scram_exchange_verifies_server_signature(proxy):
    # The harness's own SCRAM client checks the proxy's ServerSignature: the proxy proves it
    # knows the database's secret for this user, it does not just accept anything.
    with RawConn(proxy.host, proxy.port) as c:
        status = c.login(APP_USER, ROLES[APP_USER].password, "app")
        assert status["_txn_status"] == "I"
        assert status.get("session_authorization", APP_USER) == APP_USER
        assert "_backend_key" in status, "no BackendKeyData: clients could not cancel"
        for name in ("server_version", "client_encoding", "standard_conforming_strings"):
            assert name in status, f"no ParameterStatus {name}"
        rows, errors = c.simple_query("SELECT current_user")
        assert not errors and rows == [[APP_USER]]


def check_login_refused(proxy, fields: dict) -> None:
    """A refused login: FATAL ErrorResponse; 28P01 and PostgreSQL's wording (which does not
    reveal whether the user exists)."""
    assert fields.get("S") == "FATAL", fields
    if not proxy.unsupported("auth_failure_28P01"):
        assert fields.get("C") == "28P01", fields
        assert "password authentication failed" in fields.get("M", ""), fields


@pytest.mark.parametrize("user,password", [(APP_USER, "wrong password"),
                                           ("no_such_user", "whatever")])
def test_wrong_password_gets_28P01(proxy, user, password):
    with RawConn(proxy.host, proxy.port) as c:
        with pytest.raises(LoginError) as ei:
            c.login(user, password, "app")
        check_login_refused(proxy, ei.value.fields)
        assert c.read_until_close(5).closed, "connection left open after a failed login"

    async def attempt():
        return await asyncpg.connect(**proxy.conninfo(user, "app", password=password)
                                     .asyncpg_kwargs())

    with pytest.raises(asyncpg.PostgresError) as ei2:
        asyncio.run(asyncio.wait_for(attempt(), 15))
    if not proxy.unsupported("auth_failure_28P01"):
        assert isinstance(ei2.value, asyncpg.InvalidPasswordError), repr(ei2.value)

    r = psql(proxy.conninfo(user, "app", password=password), "SELECT 1")
    assert r.rc == 2 and r.rows == [], r.stderr
    if not proxy.unsupported("auth_failure_28P01"):
        assert "password authentication failed" in r.stderr, r.stderr
    # Still serving correct logins.
    assert psql(proxy.conninfo(), "SELECT 1").rows == [["1"]]


def test_empty_password_is_refused(proxy):
    with RawConn(proxy.host, proxy.port) as c:
        with pytest.raises(LoginError) as ei:
            c.login(APP_USER, "", "app")
    check_login_refused(proxy, ei.value.fields)


def test_unknown_database_gets_an_error(proxy):
    async def attempt():
        return await asyncpg.connect(**proxy.conninfo(APP_USER, "no_such_db").asyncpg_kwargs())

    with pytest.raises(asyncpg.PostgresError) as ei:
        asyncio.run(asyncio.wait_for(attempt(), 15))
    if not proxy.unsupported("unknown_database_3D000"):
        assert ei.value.sqlstate == "3D000", (ei.value.sqlstate, str(ei.value))
        assert "no_such_db" in str(ei.value)

    r = psql(proxy.conninfo(APP_USER, "no_such_db"), "SELECT 1")
    assert r.rc == 2 and r.rows == [], r.stderr
    if not proxy.unsupported("unknown_database_3D000"):
        assert "no_such_db" in r.stderr and "does not exist" in r.stderr, r.stderr
        assert r.elapsed < 5, f"took {r.elapsed:.1f}s to report an unknown database"
    # The proxy keeps serving everyone else.
    assert psql(proxy.conninfo(), "SELECT 1").rows == [["1"]]


def test_md5_auth_type(proxy_factory):
    # [auth] type = "md5": md5-hashed users log in with md5 (and the proxy logs into the
    # backend with md5 from the looked-up hash); SCRAM-hashed users still log in, as with
    # PostgreSQL's own md5 method.
    proxy = proxy_factory(auth={"type": "md5"})
    r = psql(proxy.conninfo(MD5_USER, "app"), "SELECT current_user")
    assert r.ok and r.rows == [[MD5_USER]], r.stderr
    r = psql(proxy.conninfo(APP_USER, "app"), "SELECT current_user")
    assert r.ok and r.rows == [[APP_USER]], r.stderr
    with RawConn(proxy.host, proxy.port) as c:
        with pytest.raises(LoginError) as ei:
            c.login(MD5_USER, "wrong", "app")
    check_login_refused(proxy, ei.value.fields)
