"""auth_query logins checked as PostgreSQL checks them: VALID UNTIL, NOLOGIN and a changed password
count at once (each login reads the catalog afresh); a stranger's failed guesses do not make the
proxy query PostgreSQL at will; and the first login works without a superuser: the pool's own
user against its configured password, everyone else after `heliosctl auth-setup`."""

import subprocess
import time
import uuid

import psycopg
import pytest

from harness import APP_USER, AUTH_USER, HELIOS_AUTH_QUERY, ROLES, psql
from harness.proxy import helios_binary
from harness.wire import LoginError, RawConn


@pytest.fixture(autouse=True)
def helios_only(proxy_factory):
    from harness.proxy import target_name
    if target_name() != "helios":
        pytest.skip("HeliosProxy's auth_query semantics")


def admin(pg, sql: str, db: str = "postgres") -> None:
    with pg.admin_connect(db) as c:
        c.execute(sql)


def login(proxy, user: str, password: str) -> dict:
    """Logs in with the harness's SCRAM client; returns {} on success, else the error fields."""
    with RawConn(proxy.host, proxy.port) as c:
        try:
            c.login(user, password, "app")
        except LoginError as e:
            return e.fields
        rows, errors = c.simple_query("SELECT current_user")
        assert not errors and rows == [[user]], (rows, errors)
        return {}


def direct_login(pg, user: str, password: str) -> dict:
    """The same login straight to PostgreSQL: what the proxy must match."""
    with RawConn(pg.host, pg.port) as c:
        try:
            c.login(user, password, "app")
        except LoginError as e:
            return e.fields
        return {}


def same_as_postgres(ours: dict, theirs: dict) -> None:
    assert (ours.get("S"), ours.get("C"), ours.get("M")) == \
        (theirs.get("S"), theirs.get("C"), theirs.get("M")), (ours, theirs)


def test_valid_until_in_the_past_is_refused_at_once(pg, proxy_factory, role):
    proxy = proxy_factory()
    user = role("pw-v")
    assert login(proxy, user, "pw-v") == {}  # known to the proxy, and valid

    admin(pg, f"ALTER ROLE \"{user}\" VALID UNTIL '2001-02-03 04:05:06+00'")
    f = login(proxy, user, "pw-v")
    assert f.get("S") == "FATAL" and f.get("C") == "28P01", f
    assert f.get("M") == f'password authentication failed for user "{user}"', f
    same_as_postgres(f, direct_login(pg, user, "pw-v"))
    assert "expired" in proxy.stderr_tail(200), "the log does not say why"

    # A limit a few seconds ahead: valid now, refused once it passes, by the proxy's clock.
    time.sleep(1.1)  # after a failed login its record is reused for 1 s (the rate limit)
    admin(pg, f"ALTER ROLE \"{user}\" VALID UNTIL '{_in_seconds(pg, 2)}'")
    assert login(proxy, user, "pw-v") == {}
    time.sleep(2.5)
    assert login(proxy, user, "pw-v").get("C") == "28P01"
    time.sleep(1.1)

    admin(pg, f"ALTER ROLE \"{user}\" VALID UNTIL 'infinity'")
    assert login(proxy, user, "pw-v") == {}


def _in_seconds(pg, s: int) -> str:
    with pg.admin_connect("postgres") as c:
        return c.execute(f"SELECT (now() + interval '{s} seconds')::text").fetchone()[0]


def test_nologin_is_refused_at_once(pg, proxy_factory, role):
    proxy = proxy_factory()
    user = role("pw-n")
    assert login(proxy, user, "pw-n") == {}  # a second ago it could log in

    admin(pg, f'ALTER ROLE "{user}" NOLOGIN')
    f = login(proxy, user, "pw-n")
    assert f.get("S") == "FATAL" and f.get("C") == "28000", f
    assert f.get("M") == f'role "{user}" is not permitted to log in', f
    same_as_postgres(f, direct_login(pg, user, "pw-n"))
    # A wrong password is a wrong password first, as in PostgreSQL.
    assert login(proxy, user, "nope").get("C") == "28P01"
    assert direct_login(pg, user, "nope").get("C") == "28P01"
    r = psql(proxy.conninfo(user, "app", password="pw-n"), "SELECT 1")
    assert r.rc == 2 and "is not permitted to log in" in r.stderr, r.stderr
    assert proxy.metric("helios_proxy_login_failures_total", reason="no_login") >= 2

    time.sleep(1.1)  # past the failed-login holdoff
    admin(pg, f'ALTER ROLE "{user}" LOGIN')
    assert login(proxy, user, "pw-n") == {}


def test_changed_password_counts_at_once(pg, proxy_factory, role):
    proxy = proxy_factory()
    user = role("old-pw")
    assert login(proxy, user, "old-pw") == {}
    r = psql(proxy.conninfo(user, "app", password="old-pw"), "SELECT current_user")
    assert r.rows == [[user]], r.stderr

    admin(pg, f"ALTER ROLE \"{user}\" PASSWORD 'new-pw'")
    assert login(proxy, user, "new-pw") == {}, "the new password was refused"
    f = login(proxy, user, "old-pw")
    assert f.get("C") == "28P01", f"the old password still works: {f}"
    # psql (libpq) too, and queries run as that user.
    r = psql(proxy.conninfo(user, "app", password="new-pw"), "SELECT current_user")
    assert r.ok and r.rows == [[user]], r.stderr


def test_failed_logins_do_not_query_postgres_at_will(pg, proxy_factory, role):
    # Count auth_query executions with a sequence the query bumps.
    seq = "aq_calls_" + uuid.uuid4().hex[:8]
    admin(pg, f"CREATE SEQUENCE public.{seq}; GRANT USAGE ON SEQUENCE public.{seq} TO {AUTH_USER}")
    try:
        proxy = proxy_factory(auth={"auth_query": f"SELECT u.*, nextval('public.{seq}') AS n "
                                                  f"FROM helios.user_lookup($1) u"})
        user = role("right")

        def calls() -> int:
            with pg.admin_connect("postgres") as c:
                return c.execute(f"SELECT last_value, is_called FROM public.{seq}").fetchone()[0]

        assert login(proxy, user, "right") == {}
        before = calls()
        start = time.monotonic()
        guesses = 0
        while time.monotonic() - start < 2.5:
            assert login(proxy, user, f"guess {guesses}").get("C") == "28P01"
            guesses += 1
        elapsed = time.monotonic() - start
        made = calls() - before
        print(f"{made} auth_query lookups for {guesses} wrong guesses in {elapsed:.2f}s")
        # At most one lookup per user per second of guessing (plus the first).
        assert guesses > 10
        assert made <= elapsed + 2, f"{made} lookups for {guesses} wrong guesses in {elapsed:.1f}s"
        # The right password still works during and after the guessing.
        assert login(proxy, user, "right") == {}
    finally:
        admin(pg, f"DROP SEQUENCE IF EXISTS public.{seq}")


def test_first_login_without_a_superuser(pg, proxy_factory, role):
    # [backend] user an ordinary role, no [auth] section: the default auth_query reads
    # pg_authid, which that role may not.
    pool_user = role("pool-pw")
    proxy = proxy_factory({"auth": None},
                          backend={"user": pool_user, "password": "pool-pw", "database": "postgres"})
    assert "auth" not in proxy.config
    # The pool's own user: checked against the configured password, no query needed.
    r = psql(proxy.conninfo(pool_user, "app", password="pool-pw"), "SELECT current_user")
    assert r.ok and r.rows == [[pool_user]], r.stderr
    assert login(proxy, pool_user, "wrong").get("C") == "28P01"

    # Anyone else: an error that says what to do, in the client's message and the log.
    r = psql(proxy.conninfo(APP_USER, "app"), "SELECT 1")
    assert r.rc == 2, r.stderr
    assert "42501" in r.stderr and "heliosctl auth-setup" in r.stderr, r.stderr
    assert "auth_query" in r.stderr, r.stderr
    log = proxy.stderr_tail(200)
    assert "heliosctl auth-setup" in log, log

    # heliosctl prints the SQL; a superuser runs it; the proxy is pointed at the function.
    ctl = helios_binary().parent / "heliosctl"
    cp = subprocess.run([str(ctl), "auth-setup", "--config", str(proxy.config_path)],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    assert "SECURITY DEFINER" in cp.stdout and f"TO {pool_user};" in cp.stdout, cp.stdout
    assert "pg_authid" in cp.stdout and "NOT a.rolsuper" in cp.stdout, cp.stdout
    # --install runs the same SQL as a superuser (here over the unix socket, trust).
    cp = subprocess.run([str(ctl), "auth-setup", "--config", str(proxy.config_path), "--install",
                         "--host", str(pg.sockdir), "-U", "postgres"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    assert "SELECT * FROM helios.user_lookup($1)" in cp.stdout, cp.stdout
    proxy.config.setdefault("auth", {})["auth_query"] = HELIOS_AUTH_QUERY
    proxy.reload()
    deadline = time.monotonic() + 10
    while True:
        r = psql(proxy.conninfo(APP_USER, "app"), "SELECT current_user")
        if r.ok or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.ok and r.rows == [[APP_USER]], r.stderr
    # The function hands out nothing to anyone else.
    with psycopg.connect(host=pg.host, port=pg.port, user=APP_USER,
                         password=ROLES[APP_USER].password, dbname="postgres") as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT * FROM helios.user_lookup('app')")


def test_md5_logins_check_valid_until_and_nologin_too(pg, proxy_factory, role):
    # [auth] type md5 with a role whose password is stored as an md5 hash: libpq's md5 path.
    proxy = proxy_factory(auth={"type": "md5"})
    user = role()
    with pg.admin_connect("postgres") as c:
        c.execute("SET password_encryption = 'md5'")
        c.execute(f"ALTER ROLE \"{user}\" PASSWORD 'md5-pw'")
        stored = c.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                           (user,)).fetchone()[0]
    assert stored.startswith("md5"), stored
    # (The proxy refuses these before any backend login: pg_hba here wants SCRAM from it.)
    ci = proxy.conninfo(user, "app", password="md5-pw")
    admin(pg, f'ALTER ROLE "{user}" NOLOGIN')
    r = psql(ci, "SELECT 1")
    assert r.rc == 2 and f'role "{user}" is not permitted to log in' in r.stderr, r.stderr
    r = psql(ci.with_(password="wrong"), "SELECT 1")  # the md5 response is checked first
    assert r.rc == 2 and "password authentication failed" in r.stderr, r.stderr

    admin(pg, f"ALTER ROLE \"{user}\" LOGIN VALID UNTIL '2001-01-01'")
    time.sleep(1.1)  # past the failed-login holdoff
    r = psql(ci, "SELECT 1")
    assert r.rc == 2 and "password authentication failed" in r.stderr, r.stderr
    assert "expired" in proxy.stderr_tail(50)


def test_auth_cache_ttl_trades_freshness_for_fewer_queries(pg, proxy_factory, role):
    # [auth] auth_cache_ttl > 0: logins reuse a recent record (one query for many logins); a
    # failed login with a record older than a second makes the next login refetch it, so a
    # changed password works from the second attempt.
    seq = "aq_calls_" + uuid.uuid4().hex[:8]
    admin(pg, f"CREATE SEQUENCE public.{seq}; GRANT USAGE ON SEQUENCE public.{seq} TO {AUTH_USER}")
    try:
        proxy = proxy_factory(auth={"auth_cache_ttl": "30s",
                                    "auth_query": f"SELECT u.*, nextval('public.{seq}') AS n "
                                                  f"FROM helios.user_lookup($1) u"})
        user = role("c-1")

        def calls() -> int:
            with pg.admin_connect("postgres") as c:
                return c.execute(f"SELECT last_value FROM public.{seq}").fetchone()[0]

        assert login(proxy, user, "c-1") == {}
        before = calls()
        for _ in range(5):
            assert login(proxy, user, "c-1") == {}
        assert calls() == before, "cached logins queried PostgreSQL"

        time.sleep(1.1)
        admin(pg, f"ALTER ROLE \"{user}\" PASSWORD 'c-2'")
        assert login(proxy, user, "c-2").get("C") == "28P01"  # the cached secret is stale
        assert login(proxy, user, "c-2") == {}  # refetched after the failure
        assert login(proxy, user, "c-1").get("C") == "28P01"
    finally:
        admin(pg, f"DROP SEQUENCE IF EXISTS public.{seq}")
