"""Session state in transaction pooling (issue 7, items 2 and 4): carried parameters follow a
client from backend to backend and never reach another client; state that cannot be carried
(temp tables, session advisory locks, WITH HOLD cursors, LISTEN, untracked SET) pins the client
to its backend until released, and shows in /metrics; pin_policy = "error" refuses it.

Backend identity is pg_backend_pid(). pool_size=1 forces two clients onto the same backend;
with pool_size=2 a client is pushed onto "the other" backend by a second client holding an open
transaction on one of them."""

from __future__ import annotations

import asyncio
import contextlib
import select
import time

import asyncpg
import psycopg
import pytest
from psycopg import errors as pgerr

from harness import APP_USER, wait_until

pytestmark = pytest.mark.needs("metrics")

# A schema only a client that SET its search_path can see unqualified.
LEAK_SCHEMA = "ps_leak_s"
LEAK_TABLE = "ps_leak_probe"


@pytest.fixture(scope="module")
def leak_schema(pg):
    pg.query(f"DROP SCHEMA IF EXISTS {LEAK_SCHEMA} CASCADE; CREATE SCHEMA {LEAK_SCHEMA};"
             f"CREATE TABLE {LEAK_SCHEMA}.{LEAK_TABLE} (v text);"
             f"INSERT INTO {LEAK_SCHEMA}.{LEAK_TABLE} VALUES ('only via search_path');"
             f"GRANT USAGE ON SCHEMA {LEAK_SCHEMA} TO PUBLIC;"
             f"GRANT SELECT ON {LEAK_SCHEMA}.{LEAK_TABLE} TO PUBLIC", dbname="app")
    return LEAK_SCHEMA


def _connect(proxy, **kw):
    kw.setdefault("prepare_threshold", None)
    return proxy.connect(APP_USER, "app", **kw)


def _pid(conn) -> int:
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def _show(conn, name: str) -> str:
    return conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]


def _sees_probe(conn) -> bool:
    """True if the unqualified probe table resolves (it only can through the leak schema)."""
    found = conn.execute(f"SELECT to_regclass('{LEAK_TABLE}') IS NOT NULL").fetchone()[0]
    if found:  # and what a user would run works
        assert conn.execute(f"SELECT v FROM {LEAK_TABLE}").fetchone() == ("only via search_path",)
    return found


def _run(conn, sql: str, protocol: str):
    """A statement by the simple query protocol, or by the extended one (unnamed Parse)."""
    if protocol == "simple":
        return conn.execute(sql)
    return conn.cursor().execute(sql, binary=True)  # binary results force Parse/Bind/Execute


@contextlib.contextmanager
def _holding(conn):
    """An open transaction on conn: its backend is taken until the block ends."""
    conn.execute("BEGIN")
    try:
        yield _pid(conn)
    finally:
        conn.execute("COMMIT")


def _backend_released(pid_a: int, b, c) -> None:
    """With pool_size=2: B and C open transactions at once, so they hold both backends; one of
    them must be pid_a, i.e. pid_a is no longer bound to its former client."""
    with _holding(b) as pid_b, _holding(c) as pid_c:
        assert pid_a in (pid_b, pid_c), \
            f"backend {pid_a} stayed bound to its client (others got {pid_b}, {pid_c})"


def _pinned(proxy) -> float:
    return proxy.metric("helios_proxy_pinned_clients")


def _pins(proxy, reason: str) -> float:
    return proxy.metric("helios_proxy_pins_total", reason=reason)


def _wait_pinned(proxy, n: int) -> None:
    try:
        wait_until(lambda: _pinned(proxy) == n, timeout=3, what=f"pinned_clients == {n}")
    except TimeoutError:
        pass
    assert _pinned(proxy) == n


A_SETTINGS = {"search_path": f"{LEAK_SCHEMA}, public", "TimeZone": "Pacific/Chatham",
              "statement_timeout": "100ms"}
# 2020-01-01 00:00 UTC as seen in each zone: the user-visible effect of TimeZone.
TZ_PROBE = "SELECT to_char(timestamptz '2020-01-01 00:00:00+00', 'HH24:MI')"


def _state(conn) -> dict:
    return {k: _show(conn, k) for k in A_SETTINGS}


def _check_timeout_applies(conn) -> bool:
    """True if statement_timeout = 100ms cancels a 300 ms sleep."""
    try:
        conn.execute("SELECT pg_sleep(0.3)")
        return False
    except pgerr.QueryCanceled:
        return True


# ---------------------------------------------------------------------------------------------
# Carried parameters


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_set_never_visible_to_the_next_client_on_the_same_backend(proxy_factory, leak_schema,
                                                                 protocol):
    proxy = proxy_factory(mode="transaction", pool_size=1)
    b = _connect(proxy)
    pid = _pid(b)
    defaults = _state(b)
    default_tz_probe = b.execute(TZ_PROBE).fetchone()[0]
    assert not _sees_probe(b)

    a = _connect(proxy)
    _run(a, f"SET search_path = {LEAK_SCHEMA}, public", protocol)
    _run(a, "SET TIME ZONE 'Pacific/Chatham'", protocol)
    _run(a, "SET statement_timeout = '100ms'", protocol)
    assert _pid(a) == pid  # one backend: A and B share it, one transaction at a time
    assert _sees_probe(a)

    for round_ in range(3):
        # B runs on the very backend A just used, and sees none of A's settings.
        assert _pid(b) == pid
        assert _state(b) == defaults, round_
        assert not _sees_probe(b), f"round {round_}: B resolved a table through A's search_path"
        with pytest.raises(pgerr.UndefinedTable):
            b.execute(f"SELECT v FROM {LEAK_TABLE}")
        assert b.execute(TZ_PROBE).fetchone()[0] == default_tz_probe
        assert b.execute("SELECT pg_sleep(0.3), 'slept'").fetchone() == ("", "slept"), \
            "B's 300 ms query must not be cut by A's statement_timeout"
        # B's own change must not reach A either.
        b.execute("SET search_path = public")
        b.execute("SET TIME ZONE 'UTC'")
        # A, on the same backend again, still has all of its own settings.
        assert _pid(a) == pid
        assert _state(a) == A_SETTINGS, round_
        assert _sees_probe(a)
        assert a.execute(TZ_PROBE).fetchone()[0] == "13:45"
        assert _check_timeout_applies(a), f"round {round_}: A's statement_timeout was lost"
        b.execute("RESET ALL")


@pytest.mark.timeout(90)
def test_client_keeps_its_settings_across_backends(proxy_factory, leak_schema):
    proxy = proxy_factory(mode="transaction", pool_size=2)
    a = _connect(proxy, application_name="client_a")
    b = _connect(proxy, application_name="client_b")
    defaults = _state(b)
    a.execute(f"SET search_path = {LEAK_SCHEMA}, public")
    a.execute("SET TIME ZONE 'Pacific/Chatham'")
    a.execute("SET statement_timeout = '100ms'")
    a.execute("SET application_name = 'client_a_renamed'")
    pids_a, timeout_checked = set(), set()
    for i in range(20):
        with (_holding(b) if i % 2 else contextlib.nullcontext()) as pid_b:
            if i % 3 == 0:
                a.execute("BEGIN")
            pid_a = _pid(a)
            if pid_b is not None:
                assert pid_a != pid_b
            pids_a.add(pid_a)
            assert _state(a) == A_SETTINGS, (i, pid_a)
            assert _show(a, "application_name") == "client_a_renamed"
            assert _sees_probe(a), (i, pid_a)
            assert a.execute(TZ_PROBE).fetchone()[0] == "13:45"
            if i % 3 == 0:
                a.execute("COMMIT")
            elif pid_a not in timeout_checked:
                assert _check_timeout_applies(a), f"A's statement_timeout lost on backend {pid_a}"
                timeout_checked.add(pid_a)
        # B, who never SET anything, sees the defaults on whichever backend it lands on.
        with _holding(b):
            assert _state(b) == defaults, i
            assert _show(b, "application_name") == "client_b"
            assert not _sees_probe(b)
    assert len(pids_a) == 2, f"A never moved to the other backend: {pids_a}"
    assert len(timeout_checked) == 2


@pytest.mark.timeout(60)
def test_set_local_does_not_outlive_the_transaction(proxy_factory, leak_schema):
    proxy = proxy_factory(mode="transaction", pool_size=1)
    a = _connect(proxy)
    b = _connect(proxy)
    defaults = _state(b)
    a.execute("SET TIME ZONE 'Asia/Kolkata'")
    a.execute("BEGIN")
    a.execute(f"SET LOCAL search_path = {LEAK_SCHEMA}")
    a.execute("SET LOCAL TIME ZONE 'Pacific/Chatham'")
    a.execute("SET LOCAL statement_timeout = '100ms'")
    assert _sees_probe(a)
    assert _show(a, "TimeZone") == "Pacific/Chatham"
    a.execute("COMMIT")
    # After COMMIT: A has its session value back, the LOCAL ones are gone.
    assert _show(a, "search_path") == defaults["search_path"]
    assert _show(a, "TimeZone") == "Asia/Kolkata"
    assert _show(a, "statement_timeout") == defaults["statement_timeout"]
    assert not _sees_probe(a)
    # And B, on the same backend, sees neither the LOCAL nor the session values.
    assert _pid(b) == _pid(a)
    assert _state(b) == defaults
    assert b.execute("SELECT pg_sleep(0.3), 1").fetchone() == ("", 1)
    # A again: still only its session-level setting.
    assert _state(a) == dict(defaults, TimeZone="Asia/Kolkata")


@pytest.mark.timeout(60)
def test_set_in_a_rolled_back_transaction_is_not_carried(proxy_factory, leak_schema):
    """PostgreSQL undoes a SET made in a transaction that rolls back (or fails). The proxy must
    not replay it on the client's next backend; a SET in a committed transaction is kept."""
    proxy = proxy_factory(mode="transaction", pool_size=2)
    a = _connect(proxy)
    b = _connect(proxy)
    defaults = _state(b)

    a.execute("BEGIN")
    a.execute(f"SET search_path = {LEAK_SCHEMA}, public")
    assert _sees_probe(a)
    a.execute("ROLLBACK")
    a.execute("BEGIN")
    a.execute("SET TIME ZONE 'Pacific/Chatham'")
    with pytest.raises(pgerr.DivisionByZero):
        a.execute("SELECT 1/0")
    a.execute("ROLLBACK")
    assert _state(a) == defaults  # same backend: PostgreSQL undid both
    pid_first = _pid(a)
    for _ in range(4):  # on the other backend too
        with _holding(b) as pid_b:
            pid_a = _pid(a)
            assert pid_a != pid_b
            assert _state(a) == defaults, f"backend {pid_a} (first was {pid_first})"
            assert not _sees_probe(a)

    # A SET inside a committed transaction is session state: it follows A.
    a.execute("BEGIN")
    a.execute(f"SET search_path = {LEAK_SCHEMA}, public")
    a.execute("COMMIT")
    seen = set()
    for _ in range(4):
        with _holding(b):
            seen.add(_pid(a))
            assert _sees_probe(a)
        seen.add(_pid(a))
        assert _sees_probe(a)
    assert len(seen) == 2


@pytest.mark.timeout(60)
def test_failed_set_is_not_carried(proxy_factory):
    """A SET the server rejects changes nothing; the client's earlier value must survive a move
    to another backend."""
    proxy = proxy_factory(mode="transaction", pool_size=2)
    a = _connect(proxy)
    b = _connect(proxy)
    a.execute("SET statement_timeout = '100ms'")
    with pytest.raises(pgerr.InvalidParameterValue):
        a.execute("SET statement_timeout = 'not a duration'")
    assert _show(a, "statement_timeout") == "100ms"
    pids = set()
    for _ in range(4):
        with _holding(b):
            pids.add(_pid(a))
            assert _show(a, "statement_timeout") == "100ms", f"backend {_pid(a)}"
        pids.add(_pid(a))
        assert _show(a, "statement_timeout") == "100ms", f"backend {_pid(a)}"
    assert len(pids) == 2


@pytest.mark.timeout(60)
def test_prepared_set_executed_again_never_leaks(proxy_factory, leak_schema):
    """A SET prepared once and executed several times (psycopg prepare=True; drivers with a
    statement cache do the same): each execution changes the session, not only the first."""
    proxy = proxy_factory(mode="transaction", pool_size=1)
    a = _connect(proxy, prepare_threshold=0)
    b = _connect(proxy)
    defaults = _state(b)
    a.execute(f"SET search_path TO {LEAK_SCHEMA}, public", prepare=True)
    a.execute("RESET search_path", prepare=True)
    a.execute(f"SET search_path TO {LEAK_SCHEMA}, public", prepare=True)  # Bind/Execute only
    assert _sees_probe(a)
    assert _pid(b) == _pid(a)
    assert _state(b) == defaults, "B sees the search_path A set with a re-executed statement"
    assert not _sees_probe(b)
    assert _sees_probe(a)
    assert _show(a, "search_path") == f"{LEAK_SCHEMA}, public"


@pytest.mark.timeout(60)
def test_startup_options_are_applied_or_refused(proxy_factory, leak_schema):
    """options=-c search_path=... in the startup packet: the client either gets it on every
    backend (and nobody else does), or is refused clearly at connect; never silently dropped."""
    proxy = proxy_factory(mode="transaction", pool_size=1)
    try:
        a = _connect(proxy, options=f"-c search_path={LEAK_SCHEMA},public")
    except psycopg.OperationalError as e:
        assert "options" in str(e), f"refused without naming the parameter: {e}"
        return
    with psycopg.connect(**proxy.cluster.conninfo(APP_USER, "app"),
                         options=f"-c search_path={LEAK_SCHEMA},public") as direct:
        expected = _show(direct, "search_path")  # what PostgreSQL itself makes of it
        assert _sees_probe(direct)
    b = _connect(proxy)
    assert _show(a, "search_path") == expected
    assert _sees_probe(a), f"search_path through the proxy is {_show(a, 'search_path')!r}"
    assert _pid(b) == _pid(a)
    assert not _sees_probe(b)
    assert _sees_probe(a)


@pytest.mark.timeout(60)
def test_reset_reset_all_and_discard_all_forget_carried_state(proxy_factory, leak_schema):
    proxy = proxy_factory(mode="transaction", pool_size=2)
    a = _connect(proxy)
    b = _connect(proxy)
    defaults = _state(b)

    def everywhere(expected: dict) -> None:
        pids = set()
        for _ in range(3):
            with _holding(b):
                pids.add(_pid(a))
                assert _state(a) == expected
            pids.add(_pid(a))
            assert _state(a) == expected
        assert len(pids) == 2

    a.execute(f"SET search_path = {LEAK_SCHEMA}, public")
    a.execute("SET TIME ZONE 'Pacific/Chatham'")
    a.execute("SET statement_timeout = '100ms'")
    everywhere(A_SETTINGS)
    a.execute("RESET search_path")
    a.execute("SET statement_timeout TO DEFAULT")
    everywhere(dict(A_SETTINGS, search_path=defaults["search_path"],
                    statement_timeout=defaults["statement_timeout"]))
    a.execute("RESET ALL")
    everywhere(defaults)
    a.execute(f"SET search_path = {LEAK_SCHEMA}, public")
    a.execute("SET TIME ZONE 'Pacific/Chatham'")
    a.execute("DISCARD ALL")
    everywhere(defaults)
    assert a.execute("SELECT 'usable'").fetchone() == ("usable",)


@pytest.mark.timeout(60)
def test_set_config_function_never_leaks(proxy_factory, leak_schema):
    """set_config(name, value, false) changes session state without a SET statement (row-level
    security setups use it for the tenant id). Whatever the proxy does with it (carry or pin),
    another client must never see the value."""
    proxy = proxy_factory(mode="transaction", pool_size=2,
                          connection_pool={"acquire_timeout": "1s"})
    a = _connect(proxy)
    a.execute("SELECT set_config('helios_test.tenant_id', 'tenant-A', false), "
              f"set_config('search_path', '{LEAK_SCHEMA}, public', false)")
    pid_a = _pid(a)
    assert a.execute("SELECT current_setting('helios_test.tenant_id')").fetchone() == ("tenant-A",)
    others = [_connect(proxy), _connect(proxy)]
    landed_on_a, refused = 0, 0
    for _ in range(3):
        held = []
        for k, o in enumerate(others):  # both backends asked for at once: one of them is A's
            try:
                o.execute("BEGIN")
                pid = _pid(o)
            except psycopg.OperationalError as e:  # A's backend is pinned: nothing left
                assert e.sqlstate == "53300", e
                refused += 1
                others[k] = _connect(proxy)
                continue
            held.append(o)
            landed_on_a += pid == pid_a
            v = o.execute("SELECT current_setting('helios_test.tenant_id', true)").fetchone()[0]
            assert v in (None, ""), f"another client on backend {pid} sees tenant_id={v!r}"
            assert _show(o, "search_path") != f"{LEAK_SCHEMA}, public", f"backend {pid}"
        for o in held:
            o.execute("COMMIT")
        # A itself keeps its state (carried, or pinned to its backend).
        assert a.execute("SELECT current_setting('helios_test.tenant_id', true)").fetchone() == (
            "tenant-A",)
        assert _sees_probe(a)
    if landed_on_a == 0:  # A kept its backend: that is a pin, and it must be counted
        assert refused > 0 and _pinned(proxy) == 1


@pytest.mark.timeout(60)
def test_track_parameters_extra_is_carried_without_pinning(proxy_factory):
    proxy = proxy_factory(mode="transaction", pool_size=2,
                          connection_pool={"track_parameters": ["random_page_cost"]})
    a = _connect(proxy)
    b = _connect(proxy)
    default = _show(b, "random_page_cost")
    untracked_before = _pins(proxy, "untracked_set")
    a.execute("SET random_page_cost = 1.5")
    assert _pinned(proxy) == 0
    assert _pins(proxy, "untracked_set") == untracked_before
    pids_a, pids_b = set(), set()
    for _ in range(4):
        with _holding(b) as pid_b:
            pids_b.add(pid_b)
            assert _show(b, "random_page_cost") == default
            pid_a = _pid(a)
            assert pid_a != pid_b
            pids_a.add(pid_a)
            assert _show(a, "random_page_cost") == "1.5"
        with _holding(a) as pid_a:
            pids_a.add(pid_a)
            assert _show(a, "random_page_cost") == "1.5"
            pids_b.add(_pid(b))
            assert _show(b, "random_page_cost") == default
    assert len(pids_a) == 2 and len(pids_b) == 2, (pids_a, pids_b)


@pytest.mark.timeout(60)
def test_untracked_set_pins_until_reset(proxy_factory):
    proxy = proxy_factory(mode="transaction", pool_size=2)
    a, b, c = _connect(proxy), _connect(proxy), _connect(proxy)
    before = _pins(proxy, "untracked_set")
    a.execute("SET enable_seqscan = off")
    pid_a = _pid(a)
    assert _pins(proxy, "untracked_set") == before + 1
    _wait_pinned(proxy, 1)
    for _ in range(5):
        with _holding(b) as pid_b:
            assert pid_b != pid_a, "a pinned backend was leased to another client"
            assert _show(b, "enable_seqscan") == "on"
            assert _pid(a) == pid_a
            assert _show(a, "enable_seqscan") == "off"
        assert _pid(a) == pid_a
    a.execute("RESET enable_seqscan")
    _wait_pinned(proxy, 0)
    assert _show(a, "enable_seqscan") == "on"
    _backend_released(pid_a, b, c)  # unpinned: A's old backend serves others
    with _holding(b), _holding(c):
        assert _show(b, "enable_seqscan") == "on" and _show(c, "enable_seqscan") == "on"


# ---------------------------------------------------------------------------------------------
# Pins


@pytest.mark.timeout(60)
def test_temp_table_pins_and_drop_unpins(proxy_factory):
    proxy = proxy_factory(mode="transaction", pool_size=2,
                          connection_pool={"acquire_timeout": "1s"})
    a = _connect(proxy)
    b = _connect(proxy)
    c = _connect(proxy)
    before = _pins(proxy, "temp_table")
    assert _pinned(proxy) == 0
    a.execute("CREATE TEMP TABLE ps_pin_tmp (id int)")
    pid_a = _pid(a)
    assert _pins(proxy, "temp_table") == before + 1
    _wait_pinned(proxy, 1)

    for i in range(6):  # A's transactions all run on its backend, B never gets it
        with _holding(b) as pid_b:
            assert pid_b != pid_a, "the pinned backend was leased to another client"
            assert b.execute("SELECT to_regclass('pg_temp.ps_pin_tmp')").fetchone() == (None,)
            with a.transaction():
                a.execute("INSERT INTO ps_pin_tmp VALUES (%s)", (i,))
                assert _pid(a) == pid_a
        a.execute("INSERT INTO ps_pin_tmp VALUES (%s)", (100 + i,))
        assert _pid(a) == pid_a
    assert a.execute("SELECT count(*), sum(id) FROM ps_pin_tmp").fetchone() == (12, 630)

    # While A is pinned and B holds the other backend, a third client has nothing to get.
    with _holding(b):
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as ei:
            c.execute("SELECT 1")
        assert time.monotonic() - t0 < 3
        assert ei.value.sqlstate == "53300", ei.value
    c = _connect(proxy)

    a.execute("DROP TABLE ps_pin_tmp")
    _wait_pinned(proxy, 0)
    assert _pins(proxy, "temp_table") == before + 1
    _backend_released(pid_a, b, c)  # unpinned: A's old backend serves others
    with _holding(b) as pid_b:
        assert _pid(a) != pid_b
    assert a.execute("SELECT to_regclass('pg_temp.ps_pin_tmp')").fetchone() == (None,)


@pytest.mark.timeout(60)
def test_pinned_client_leaving_leaves_a_clean_backend(proxy_factory):
    """A client that leaves while pinned: its temp table, advisory lock, cursor and LISTEN must
    not be inherited by the next client of that backend."""
    proxy = proxy_factory(mode="transaction", pool_size=1)
    a = _connect(proxy)
    pid = _pid(a)
    a.execute("CREATE TEMP TABLE ps_left_tmp (id int)")
    a.execute("SELECT pg_advisory_lock(90101)")
    a.execute("DECLARE ps_left_cur CURSOR WITH HOLD FOR SELECT 1")
    a.execute("LISTEN ps_left_chan")
    _wait_pinned(proxy, 1)
    a.close()
    _wait_pinned(proxy, 0)

    b = _connect(proxy)
    got = []
    b.add_notify_handler(got.append)
    b_pid = _pid(b)
    leftovers = []  # everything of A's that B can see, so one run shows all of it
    if b.execute("SELECT to_regclass('pg_temp.ps_left_tmp')").fetchone() != (None,):
        leftovers.append("temp table ps_left_tmp")
    if b.execute("SELECT count(*) FROM pg_cursors").fetchone() != (0,):
        leftovers.append("cursor ps_left_cur")
    if b.execute("SELECT count(*) FROM pg_listening_channels()").fetchone() != (0,):
        leftovers.append("LISTEN ps_left_chan")
    if b.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                 "AND objid = 90101").fetchone() != (0,):
        leftovers.append("advisory lock 90101")
    with proxy.cluster.admin_connect("app") as admin:
        admin.execute("NOTIFY ps_left_chan, 'for A only'")
    time.sleep(0.2)
    b.execute("SELECT 1")
    if got:
        leftovers.append(f"notifications {[n.payload for n in got]}")
    assert not leftovers, (f"B (backend {b_pid}; A had {pid}) inherited A's session state: "
                           f"{leftovers}")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sql, reason", [
    ("CREATE TEMP TABLE ps_refused_tmp (id int)", "temp_table"),
    ("SELECT pg_advisory_lock(90201)", "advisory_lock"),
    ("DECLARE ps_refused_cur CURSOR WITH HOLD FOR SELECT 1", "hold_cursor"),
    ("LISTEN ps_refused_chan", "listen"),
    ("SET enable_seqscan = off", "untracked_set"),
])
def test_pin_policy_error_refuses_with_0A000(proxy_factory, pg, sql, reason):
    proxy = proxy_factory(mode="transaction", pool_size=2,
                          connection_pool={"pin_policy": "error"})
    a = _connect(proxy)
    with pytest.raises(psycopg.Error) as ei:
        a.execute(sql)
    assert ei.value.sqlstate == "0A000", ei.value
    assert "pin_policy" in str(ei.value) or "transaction pooling" in str(ei.value), str(ei.value)
    # The client goes on, unpinned, and the refused statement did not run anywhere.
    assert a.execute("SELECT 'goes on'").fetchone() == ("goes on",)
    assert _pinned(proxy) == 0
    assert _pins(proxy, reason) == 0
    b = _connect(proxy)
    checks = {
        "temp_table": "SELECT to_regclass('pg_temp.ps_refused_tmp') IS NULL",
        "advisory_lock": "SELECT true",  # checked below, from outside
        "hold_cursor": "SELECT count(*) = 0 FROM pg_cursors",
        "listen": "SELECT count(*) = 0 FROM pg_listening_channels()",
        "untracked_set": "SELECT current_setting('enable_seqscan') = 'on'",
    }
    for _ in range(2):  # both backends
        with _holding(b):
            assert a.execute(checks[reason]).fetchone() == (True,)
            assert b.execute(checks[reason]).fetchone() == (True,)
    assert pg.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 90201",
                    dbname="app") == [(0,)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sql", ["CREATE TEMP TABLE ps_refused_tmp2 (id int)",
                                 "SELECT pg_advisory_lock(90202)"])
def test_pin_policy_error_inside_a_transaction(proxy_factory, pg, sql):
    """Refused inside BEGIN ...: a clear 0A000 either way. Either an ERROR (the client's
    transaction is failed, as after any error, and it rolls back and goes on) or FATAL (the client
    is closed). The refused statement never runs, and the backend is left clean for others."""
    proxy = proxy_factory(mode="transaction", pool_size=1,
                          connection_pool={"pin_policy": "error"})
    a = _connect(proxy)
    a.execute("BEGIN")
    pid = _pid(a)
    with pytest.raises(psycopg.Error) as ei:
        a.execute(sql)
    err = ei.value
    assert "pin_policy" in str(err), f"{type(err).__name__}: {err}"
    if a.closed:  # FATAL: libpq reports the message, without a result to take the SQLSTATE from
        assert isinstance(err, psycopg.OperationalError)
    else:
        assert err.sqlstate == "0A000", f"{type(err).__name__}: {err}"
        assert a.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        a.execute("ROLLBACK")
        assert a.execute("SELECT to_regclass('pg_temp.ps_refused_tmp2')").fetchone() == (None,)
    _wait_pinned(proxy, 0)

    def old_backend_state():
        rows = pg.query("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,), dbname="app")
        return rows[0][0] if rows else "gone"

    # A's backend was rolled back (or closed): not left "idle in transaction".
    wait_until(lambda: old_backend_state() in ("idle", "gone"), timeout=3,
               what=f"backend {pid} idle or closed, is {old_backend_state()!r}")
    b = _connect(proxy)
    assert b.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert b.execute("SELECT to_regclass('pg_temp.ps_refused_tmp2')").fetchone() == (None,)
    assert pg.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 90202",
                    dbname="app") == [(0,)]


@pytest.mark.timeout(60)
def test_advisory_lock_pins_until_unlocked(proxy_factory, pg):
    proxy = proxy_factory(mode="transaction", pool_size=2)
    a, b, c = _connect(proxy), _connect(proxy), _connect(proxy)
    before = _pins(proxy, "advisory_lock")
    # Transaction-level locks end with the transaction: no pin.
    a.execute("SELECT pg_advisory_xact_lock(90300)")
    assert _pinned(proxy) == 0
    assert _pins(proxy, "advisory_lock") == before

    def holder(key: int):
        rows = pg.query("SELECT pid FROM pg_locks WHERE locktype = 'advisory' "
                        "AND objid = %s AND granted", (key,), dbname="app")
        return rows[0][0] if rows else None

    a.execute("SELECT pg_advisory_lock(90301)")
    a.execute("SELECT pg_advisory_lock(90302)")
    pid_a = _pid(a)
    assert _pins(proxy, "advisory_lock") == before + 2
    _wait_pinned(proxy, 1)
    assert holder(90301) == pid_a and holder(90302) == pid_a
    for _ in range(4):
        with _holding(b) as pid_b:
            assert pid_b != pid_a, "the pinned backend was leased to another client"
            assert _pid(a) == pid_a
        assert _pid(a) == pid_a
    assert a.execute("SELECT pg_advisory_unlock(90301)").fetchone() == (True,)
    assert holder(90301) is None and holder(90302) == pid_a
    _wait_pinned(proxy, 1)  # A still holds 90302
    with _holding(b) as pid_b:
        assert pid_b != pid_a
        assert _pid(a) == pid_a
    a.execute("SELECT pg_advisory_unlock_all()")
    assert holder(90302) is None
    _wait_pinned(proxy, 0)
    _backend_released(pid_a, b, c)


@pytest.mark.timeout(60)
def test_advisory_lock_through_a_prepared_statement(proxy_factory, pg):
    """pg_advisory_lock($1) prepared once, executed for two keys; one unlock leaves a lock held,
    so the client must stay pinned until the second unlock."""
    proxy = proxy_factory(mode="transaction", pool_size=2)
    a = _connect(proxy, prepare_threshold=0)
    b, c = _connect(proxy), _connect(proxy)

    def holder(key: int):
        rows = pg.query("SELECT pid FROM pg_locks WHERE locktype = 'advisory' "
                        "AND objid = %s AND granted", (key,), dbname="app")
        return rows[0][0] if rows else None

    a.execute("SELECT pg_advisory_lock(%s)", (90401,))
    a.execute("SELECT pg_advisory_lock(%s)", (90402,))  # the same prepared statement again
    pid_a = _pid(a)
    assert holder(90401) == pid_a and holder(90402) == pid_a
    a.execute("SELECT pg_advisory_unlock(%s)", (90401,))
    assert holder(90401) is None and holder(90402) == pid_a
    for _ in range(3):
        with _holding(b) as pid_b:
            assert pid_b != pid_a, "the backend holding A's lock was leased to another client"
            assert _pid(a) == pid_a, "A left the backend that holds its lock"
    _wait_pinned(proxy, 1)
    assert a.execute("SELECT pg_advisory_unlock(%s)", (90402,)).fetchone() == (True,)
    _wait_pinned(proxy, 0)
    _backend_released(pid_a, b, c)


@pytest.mark.timeout(60)
def test_discard_all_unpins_everything(proxy_factory, pg):
    proxy = proxy_factory(mode="transaction", pool_size=2)
    a, b, c = _connect(proxy), _connect(proxy), _connect(proxy)
    a.execute("CREATE TEMP TABLE ps_discard_tmp (id int)")
    a.execute("SELECT pg_advisory_lock(90501)")
    a.execute("DECLARE ps_discard_cur CURSOR WITH HOLD FOR SELECT 1")
    a.execute("LISTEN ps_discard_chan")
    a.execute("SET enable_seqscan = off")
    pid_a = _pid(a)
    _wait_pinned(proxy, 1)
    a.execute("DISCARD ALL")
    _wait_pinned(proxy, 0)
    assert pg.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 90501",
                    dbname="app") == [(0,)]
    _backend_released(pid_a, b, c)
    assert a.execute("SELECT to_regclass('pg_temp.ps_discard_tmp')").fetchone() == (None,)
    # DISCARD TEMP releases a temp-table pin alone.
    a.execute("CREATE TEMP TABLE ps_discard_tmp2 (id int)")
    _wait_pinned(proxy, 1)
    a.execute("DISCARD TEMP")
    _wait_pinned(proxy, 0)


@pytest.mark.timeout(60)
def test_with_hold_cursor_pins_until_close(proxy_factory):
    proxy = proxy_factory(mode="transaction", pool_size=2)
    a, b, c = _connect(proxy), _connect(proxy), _connect(proxy)
    before = _pins(proxy, "hold_cursor")
    a.execute("DECLARE ps_hold CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 9) g")
    pid_a = _pid(a)
    assert _pins(proxy, "hold_cursor") == before + 1
    _wait_pinned(proxy, 1)
    fetched = []
    for _ in range(3):
        with _holding(b) as pid_b:
            assert pid_b != pid_a
            fetched += [r[0] for r in a.execute("FETCH 3 FROM ps_hold").fetchall()]
            assert _pid(a) == pid_a
    assert fetched == list(range(1, 10))
    a.execute("CLOSE ps_hold")
    _wait_pinned(proxy, 0)
    _backend_released(pid_a, b, c)
    # A cursor without HOLD lives in its transaction only: no pin.
    with a.transaction():
        a.execute("DECLARE ps_nohold CURSOR FOR SELECT 1")
        assert a.execute("FETCH 1 FROM ps_nohold").fetchone() == (1,)
    assert _pinned(proxy) == 0
    assert _pins(proxy, "hold_cursor") == before + 1


def _wait_notify(conn, got: list, timeout: float = 5.0):
    """The next notification for an idle psycopg connection (collected by a notify handler into
    `got`), or None. Waits for the socket to become readable first, which proves the
    notification arrived while the client was idle; a query then lets psycopg dispatch it."""
    if not got:
        r, _, _ = select.select([conn.fileno()], [], [], timeout)
        if not r:
            return None
        conn.execute("SELECT 1")
    return got.pop(0) if got else None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_listen_notify_reaches_an_idle_listener(proxy_factory, mode):
    proxy = proxy_factory(mode=mode, pool_size=3)
    listener = _connect(proxy)
    got = []
    listener.add_notify_handler(got.append)
    sender = _connect(proxy)
    before = _pins(proxy, "listen")
    listener.execute("LISTEN ps_chan")
    pid_l = _pid(listener)
    if mode == "transaction":
        assert _pins(proxy, "listen") == before + 1
        _wait_pinned(proxy, 1)
    for i in range(3):
        sender.execute("SELECT pg_notify('ps_chan', %s)", (f"hello {i}",))  # extended protocol
        n = _wait_notify(listener, got)
        assert n is not None, f"notification {i} never reached the idle listener"
        assert (n.channel, n.payload) == ("ps_chan", f"hello {i}")
        # Its backend runs the next statements too, even while another client is busy.
        with _holding(sender) as pid_s:
            assert pid_s != pid_l
            assert _pid(listener) == pid_l
    sender.execute("NOTIFY ps_chan, 'simple protocol'")
    n = _wait_notify(listener, got)
    assert n is not None and n.payload == "simple protocol"
    if mode == "transaction":
        listener.execute("UNLISTEN *")
        _wait_pinned(proxy, 0)
        sender.execute("NOTIFY ps_chan, 'after unlisten'")
        assert _wait_notify(listener, got, 0.5) is None
        assert got == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_listen_notify_asyncpg_listener(proxy_factory, mode):
    """asyncpg's add_listener (LISTEN by the simple protocol, callback on arrival), notified by
    a psycopg client of the same proxy while other clients keep the pool busy."""
    proxy = proxy_factory(mode=mode, pool_size=4)
    kw = proxy.conninfo(APP_USER, "app").asyncpg_kwargs()
    sender = _connect(proxy)

    async def run() -> list[str]:
        conn = await asyncpg.connect(**kw)
        got: asyncio.Queue = asyncio.Queue()
        await conn.add_listener("ps_async_chan", lambda c, pid, ch, payload: got.put_nowait(payload))
        payloads = []
        loop = asyncio.get_running_loop()
        for i in range(5):
            await loop.run_in_executor(None, lambda: sender.execute(
                "SELECT pg_notify('ps_async_chan', %s)", (f"p{i}",)))
            payloads.append(await asyncio.wait_for(got.get(), 5))
            assert await conn.fetchval("SELECT 40 + 2") == 42
        await conn.close()
        return payloads

    assert asyncio.run(run()) == [f"p{i}" for i in range(5)]
