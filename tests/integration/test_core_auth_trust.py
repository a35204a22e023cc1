"""[auth] type = "trust": no password is asked, but a login is refused where PostgreSQL's own
trust method refuses it, at login time and with its answer: an unknown role gets FATAL 28000
`role "x" does not exist`, a NOLOGIN role FATAL 28000 `role "x" is not permitted to log in`
(read from the catalog at every login, so ALTER ROLE counts at once). VALID UNTIL limits a
password, so a trust login ignores it, as PostgreSQL's trust method does (the proxy's own
login to PostgreSQL with that role's password is still subject to it)."""

import uuid

import pytest

from harness import APP_USER, AUTH_USER, MD5_USER, ROLES
from harness.wire import LoginError, RawConn


@pytest.fixture(autouse=True)
def helios_only(proxy_factory):
    from harness.proxy import target_name
    if target_name() != "helios":
        pytest.skip("HeliosProxy's trust semantics")


def admin(pg, sql: str) -> None:
    with pg.admin_connect("postgres") as c:
        c.execute(sql)


def login(proxy, user: str) -> dict:
    """A trust login (no password) with the harness's wire client: {} or the error fields."""
    with RawConn(proxy.host, proxy.port) as c:
        try:
            c.login(user, "", "app")
        except LoginError as e:
            return e.fields
        return {}


def trust_config() -> dict:
    # The pool's own user is the app role, so the harness's readiness check (a login as it)
    # works without a password; lookups run as the auth user, as in the other modes.
    return {"backend": {"user": APP_USER, "password": ROLES[APP_USER].password},
            "auth": {"type": "trust", "auth_user": AUTH_USER,
                     "auth_password": ROLES[AUTH_USER].password}}


@pytest.mark.timeout(60)
def test_trust_refuses_what_postgresql_refuses_at_login(pg, proxy_factory, role):
    proxy = proxy_factory(trust_config())

    # A role with LOGIN gets in without a password and works: the proxy logs its backend in
    # with the md5 hash the lookup returned.
    with RawConn(proxy.host, proxy.port) as c:
        c.login(MD5_USER, "", "app")
        rows, errors = c.simple_query("SELECT current_user")
        assert not errors and rows == [[MD5_USER]], (rows, errors)

    # No such role: refused at login, as PostgreSQL's trust method refuses it.
    ghost = "no_such_role_" + uuid.uuid4().hex[:6]
    f = login(proxy, ghost)
    assert (f.get("S"), f.get("C"), f.get("M")) == \
        ("FATAL", "28000", f'role "{ghost}" does not exist'), f

    # NOLOGIN: refused at login with PostgreSQL's message (the role never reaches a backend).
    user = role(options="NOLOGIN")
    f = login(proxy, user)
    assert (f.get("S"), f.get("C"), f.get("M")) == \
        ("FATAL", "28000", f'role "{user}" is not permitted to log in'), f
    # The catalog is read at every login: a change counts at once.
    try:
        admin(pg, f'ALTER ROLE "{MD5_USER}" NOLOGIN')
        assert login(proxy, MD5_USER).get("C") == "28000"
    finally:
        admin(pg, f'ALTER ROLE "{MD5_USER}" LOGIN')
    assert login(proxy, MD5_USER) == {}

    assert proxy.metric("helios_proxy_login_failures_total", reason="no_login") == 2
    assert proxy.metric("helios_proxy_login_failures_total", reason="unknown_role") == 1
