"""The kernel data path (`[proxy] data_path = "kernel"`) against the user-space path as control.

Every test runs twice: on the kernel path and on the user-space path, with the same workload
and the same assertions, plus a check that the bytes were relayed by the path under test (so a
proxy that silently falls back to user space does not pass as "kernel"). While the kernel path
cannot run here, starting the proxy raises DataPathUnavailable and the kernel variants skip with
the proxy's reason.

1. Isolation (the issue's acceptance test): 500 clients over 10 backends in transaction mode,
   each running `SELECT <its id>` in random transactions for 20 s; every row comes back to its
   own client (0 mismatches), and PostgreSQL never sees more than 10 backends.
2. Exact counts: pgbench with a known number of transactions as one tenant; the tenant's
   Prometheus counters equal what pgbench sent, exactly.
3. A large result (10 MB) arrives complete and identical to a direct connection's, in
   transaction and session mode, and the connection goes on working.
4. Tenants past the kernel's 256 per-tenant counter slots stay in user space (kernel only).
5. COPY out of ~100 MB is byte-identical to a direct connection, and afterwards the workers hold
   no receive buffer (helios_proxy_worker_recv_buffers_free is back to all of them).

Environment: HELIOS_ISOLATION_SECONDS (default 20), HELIOS_ISOLATION_CLIENTS (default 500).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from collections import Counter

import asyncpg
import psycopg
import pytest

from harness import BENCH_USER, BackendSampler, pgbench

PATHS = ["kernel", "userspace"]

# The kernel path merges its per-tenant and byte counters into the proxy's up to ~1 s late.
SETTLE_SECONDS = 5.0


def relayed_bytes(p) -> dict[tuple[str, str], float]:
    """helios_proxy_bytes_total by (data_path, direction)."""
    out: Counter = Counter()
    for name, labels, v in p.metrics():
        if name == "helios_proxy_bytes_total":
            out[(labels.get("data_path", ""), labels.get("direction", ""))] += v
    return out


def assert_relayed_by(p, path: str, min_server_to_client: float = 1) -> dict:
    """The proxy runs `path` and that path relayed the backend's replies (at least
    `min_server_to_client` bytes of them): a silent fallback to user space fails here. On the
    user-space control, the kernel relayed nothing. Returns the byte counters."""
    if p.unsupported("metrics"):
        return {}
    assert p.metric("helios_proxy_info", data_path=path) == 1, (
        [s for s in p.metrics() if s[0] == "helios_proxy_info"])
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        b = relayed_bytes(p)
        if b[(path, "server_to_client")] >= min_server_to_client or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert b[(path, "server_to_client")] >= min_server_to_client, (
        f"the {path} path relayed {b[(path, 'server_to_client')]:.0f} reply bytes, expected "
        f">= {min_server_to_client:.0f}; all byte counters: {dict(b)}")
    # (The client-to-server direction is not checked: the proxy reads every client message
    # itself on both paths; the kernel path forwards the backend's replies.)
    if path == "userspace":
        assert b[("kernel", "server_to_client")] == 0, dict(b)
        assert b[("kernel", "client_to_server")] == 0, dict(b)
    return b


# -- 1. isolation -------------------------------------------------------------------------------

ISOLATION_CLIENTS = int(os.environ.get("HELIOS_ISOLATION_CLIENTS", "500"))
ISOLATION_BACKENDS = 10
ISOLATION_SECONDS = float(os.environ.get("HELIOS_ISOLATION_SECONDS", "20"))
# Four client kinds, round robin by id: the simple and the extended protocol (unnamed
# statements) through psycopg, asyncpg with unnamed statements and with its default statement
# cache (named prepared statements, which the proxy must re-prepare on whatever backend the
# next transaction gets).
KINDS = ("psycopg-simple", "psycopg-extended", "asyncpg-unnamed", "asyncpg-named")


class IsolationClient:
    def __init__(self, cid: int, kind: str) -> None:
        self.cid = cid
        self.kind = kind
        self.conn = None

    async def connect(self, ci) -> None:
        if self.kind.startswith("psycopg"):
            self.conn = await psycopg.AsyncConnection.connect(**ci.kwargs(), autocommit=True,
                                                              prepare_threshold=None)
        else:
            cache = 0 if self.kind == "asyncpg-unnamed" else 100
            self.conn = await asyncpg.connect(**ci.asyncpg_kwargs(), statement_cache_size=cache)

    async def command(self, sql: str) -> None:  # BEGIN / COMMIT / ROLLBACK, simple protocol
        await self.conn.execute(sql)

    async def select(self, seq: int) -> tuple:
        """(id, seq, backend pid) as the server returned them for this client's statement."""
        if self.kind == "psycopg-simple":  # no parameters: psycopg sends a simple Query
            cur = await self.conn.execute(f"SELECT {self.cid}, {seq}, pg_backend_pid()")
            return await cur.fetchone()
        if self.kind == "psycopg-extended":
            cur = await self.conn.execute("SELECT %s::int, %s::int, pg_backend_pid()",
                                          (self.cid, seq))
            return await cur.fetchone()
        row = await self.conn.fetchrow("SELECT $1::int, $2::int, pg_backend_pid()", self.cid, seq)
        return tuple(row)

    async def close(self) -> None:
        if self.conn is not None:
            try:
                await asyncio.wait_for(self.conn.close(), 10)
            except Exception:  # noqa: BLE001 - closing after a failure; reported elsewhere
                pass


class IsolationStats:
    def __init__(self, n: int) -> None:
        self.transactions = [0] * n
        self.statements = 0
        self.mismatches: list[str] = []
        self.errors: list[str] = []
        self.pids: set[int] = set()


async def isolation_client(c: IsolationClient, deadline: float, st: IsolationStats) -> None:
    rng = random.Random(c.cid)
    seq = 0

    def check(row: tuple, pid_in_txn: int | None) -> int:
        st.statements += 1
        if row[0] != c.cid or row[1] != seq:
            st.mismatches.append(f"client {c.cid} ({c.kind}) sent seq {seq}, got {row!r}")
        if pid_in_txn is not None and row[2] != pid_in_txn:
            st.mismatches.append(f"client {c.cid} ({c.kind}): backend pid changed inside a "
                                 f"transaction ({pid_in_txn} -> {row[2]})")
        st.pids.add(row[2])
        return row[2]

    while time.monotonic() < deadline:
        try:
            if rng.random() < 0.4:  # one autocommit statement
                seq += 1
                check(await c.select(seq), None)
            else:  # BEGIN; 1-4 statements, sometimes idle in between; COMMIT or ROLLBACK
                await c.command("BEGIN")
                pid = None
                for _ in range(rng.randint(1, 4)):
                    seq += 1
                    pid = check(await c.select(seq), pid)
                    if rng.random() < 0.2:  # hold the backend while other clients run
                        await asyncio.sleep(rng.uniform(0, 0.003))
                await c.command("COMMIT" if rng.random() < 0.8 else "ROLLBACK")
            st.transactions[c.cid] += 1
        except Exception as e:  # noqa: BLE001 - every error is a finding; stop this client
            st.errors.append(f"client {c.cid} ({c.kind}) at seq {seq}: {e!r}")
            return


async def run_isolation(ci, clients: int, seconds: float) -> IsolationStats:
    st = IsolationStats(clients)
    conns = [IsolationClient(i, KINDS[i % len(KINDS)]) for i in range(clients)]
    gate = asyncio.Semaphore(32)  # bounded login storm

    async def connect(c: IsolationClient) -> None:
        async with gate:
            try:
                await c.connect(ci)
            except Exception as e:  # noqa: BLE001
                st.errors.append(f"client {c.cid} ({c.kind}) connect: {e!r}")

    try:
        await asyncio.gather(*(connect(c) for c in conns))
        if st.errors:
            return st
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(isolation_client(c, deadline, st) for c in conns))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    return st


@pytest.mark.timeout(int(ISOLATION_SECONDS) + 150)
@pytest.mark.parametrize("path", PATHS)
def test_isolation_500_clients_10_backends_every_row_to_its_own_client(proxy_factory, pg, path):
    # acquire_timeout is raised from the harness's 5 s: 500 Python clients share one event loop
    # on a small shared machine, so a client can wait long for its turn; this test is about
    # where rows go, and any error (a timeout included) still fails it.
    p = proxy_factory({"connection_pool": {"acquire_timeout": "30s"}}, path=path,
                   mode="transaction", pool_size=ISOLATION_BACKENDS)
    ci = p.conninfo(BENCH_USER, "bench", application_name="isolation")
    with BackendSampler(pg, interval=0.05) as sampler:
        st = asyncio.run(run_isolation(ci, ISOLATION_CLIENTS, ISOLATION_SECONDS))
    total = sum(st.transactions)
    idle = [i for i, n in enumerate(st.transactions) if n == 0]
    print(f"\nisolation ({path}): {ISOLATION_CLIENTS} clients, {total} transactions, "
          f"{st.statements} statements in {ISOLATION_SECONDS:.0f}s, {len(st.pids)} backend pids, "
          f"{sampler.summary()}")

    assert st.errors == [], f"{len(st.errors)} errors, first: {st.errors[:5]}"
    assert st.mismatches == [], f"{len(st.mismatches)} mismatches, first: {st.mismatches[:5]}"
    # Load happened, and every client got its turns (none starved behind the others).
    assert not idle, f"{len(idle)} clients completed no transaction, e.g. {idle[:10]}"
    assert total >= 2 * ISOLATION_CLIENTS, total
    # At most 10 backends: PostgreSQL's own view during the run, and the pids the rows carry.
    assert sampler.errors == [], sampler.errors
    assert sampler.samples >= 5 * ISOLATION_SECONDS, sampler.summary()
    peak = sampler.max_by_user.get(BENCH_USER, 0)
    assert 0 < peak <= ISOLATION_BACKENDS, (
        f"pg_stat_activity showed {peak} backends of {BENCH_USER}; {sampler.summary()}")
    assert 0 < len(st.pids) <= ISOLATION_BACKENDS, sorted(st.pids)
    assert len(pg.backends(BENCH_USER)) <= ISOLATION_BACKENDS
    assert_relayed_by(p, path)


# -- 2. exact counts ----------------------------------------------------------------------------

PGBENCH_CLIENTS = 4
PGBENCH_TRANSACTIONS = 500  # per client (-t)
N = PGBENCH_CLIENTS * PGBENCH_TRANSACTIONS
QUERIES = "helios_proxy_tenant_queries_total"
TRANSACTIONS = "helios_proxy_tenant_transactions_total"
TXN_SCRIPT = "BEGIN;\nSELECT 1;\nSELECT 2;\nEND;\n"

# (tenant, pgbench options, expected queries, expected transactions). A query is one round
# trip the proxy answers with ReadyForQuery (a simple Query, or an extended Parse/Bind/
# Describe/Execute/Sync); a transaction is one backend lease (transaction mode).
#  - `-n -S`: pgbench first opens a setup connection (same application_name, so same tenant)
#    and runs 2 autocommit simple queries on it, `select count(*) from pgbench_branches` and
#    the partition lookup on pgbench_accounts (GetTableInfo; seen in PostgreSQL 15's
#    log_statement=all output). -n: no vacuum. Then each of the 4 clients runs 500
#    transactions of one statement, `SELECT abalance ... WHERE aid = ...` (`-M simple`: one
#    Query; `-M extended`: unnamed Parse/Bind/Describe/Execute/Sync). Terminate has no reply.
#    Queries = transactions = 4 * 500 + 2 = 2002.
#  - a custom script (-f) skips GetTableInfo (no setup queries); each transaction is BEGIN,
#    SELECT 1, SELECT 2, END: 4 queries on one lease. Queries = 4 * 2000 = 8000,
#    transactions = 2000.
COUNT_CASES = [
    ("count_simple", dict(select_only=True, protocol="simple"), N + 2, N + 2),
    ("count_extended", dict(select_only=True, protocol="extended"), N + 2, N + 2),
    ("count_txn_script", dict(script=TXN_SCRIPT, protocol="simple"), 4 * N, N),
]


def tenant_counts(p, tenant: str) -> tuple[float, float]:
    m = p.metrics()

    def v(name):
        return sum(x for n, lb, x in m if n == name and lb.get("tenant_id") == tenant
                   and lb.get("pool_mode") == "transaction")
    return v(QUERIES), v(TRANSACTIONS)


def settled_counts(p, tenant: str, want: tuple[int, int]) -> tuple[float, float]:
    """Polls until the tenant's counters reach `want` (or pass it), at most SETTLE_SECONDS."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        got = tenant_counts(p, tenant)
        if got[0] >= want[0] and got[1] >= want[1] or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


@pytest.mark.needs("metrics", "tenant_quotas")
@pytest.mark.timeout(150)
@pytest.mark.parametrize("path", PATHS)
def test_tenant_counters_equal_pgbench_exactly(proxy_factory, path):
    p = proxy_factory({"tenant_quotas": {"enabled": True}}, path=path, mode="transaction",
                      pool_size=2)
    # The first client of a pool borrows a backend once to learn the server's parameters for
    # its welcome; that lease runs no query. Let another tenant take it, so the counts below
    # are the pgbench tenants' own statements only.
    with psycopg.connect(**p.conninfo(BENCH_USER, "bench", application_name="count_warmup")
                         .kwargs(), autocommit=True) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)

    for tenant, opts, want_q, want_t in COUNT_CASES:
        assert tenant_counts(p, tenant) == (0, 0)
        ci = p.conninfo(BENCH_USER, "bench", application_name=tenant)
        r = pgbench(ci, clients=PGBENCH_CLIENTS, jobs=2, transactions=PGBENCH_TRANSACTIONS,
                    timeout=90, **opts)
        assert r.clean, r.describe()
        assert r.processed == N, r.describe()
        got = settled_counts(p, tenant, (want_q, want_t))
        assert got == (want_q, want_t), (
            f"tenant {tenant} ({opts}): {QUERIES} = {got[0]:.0f} (expected {want_q}), "
            f"{TRANSACTIONS} = {got[1]:.0f} (expected {want_t})")
    # Still exact once the late merges had their time: nothing counted twice afterwards.
    time.sleep(1.5)
    for tenant, opts, want_q, want_t in COUNT_CASES:
        assert tenant_counts(p, tenant) == (want_q, want_t), (tenant, opts)
    assert_relayed_by(p, path)


# -- 3. a large result --------------------------------------------------------------------------

ROWS = 10_000
LARGE_QUERIES = [
    # The query: 10,000 rows of 1,000 'x' (10 MB).
    ("SELECT repeat('x', 1000) FROM generate_series(1, 10000)", None),
    # Rows that differ from each other (so a dropped, repeated or reordered chunk shows), over
    # the extended protocol.
    ("SELECT i, repeat(md5(i::text), 32) FROM generate_series(1, %s) AS i", (ROWS,)),
]


def first_difference(got: list, want: list) -> str:
    if len(got) != len(want):
        return f"{len(got)} rows, expected {len(want)}"
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return f"row {i} differs: {str(a)[:80]!r}... != {str(b)[:80]!r}..."
    return ""


@pytest.mark.timeout(150)
@pytest.mark.parametrize("mode", ["transaction", "session"])
@pytest.mark.parametrize("path", PATHS)
def test_large_result_is_complete_and_identical_to_direct(proxy_factory, pg, path, mode):
    p = proxy_factory(path=path, mode=mode, pool_size=2)
    with psycopg.connect(**pg.conninfo(BENCH_USER, "bench"), autocommit=True) as direct:
        wants = [direct.execute(sql, params).fetchall() for sql, params in LARGE_QUERIES]
    assert len(wants[0]) == ROWS and wants[0][0] == ("x" * 1000,)

    with psycopg.connect(**p.conninfo(BENCH_USER, "bench").kwargs(), autocommit=True,
                         prepare_threshold=None) as conn:
        for (sql, params), want in zip(LARGE_QUERIES, wants):
            got = conn.execute(sql, params).fetchall()
            assert got == want, f"{sql}: {first_difference(got, want)}"
            assert conn.execute("SELECT 42").fetchone() == (42,)
        # Inside a transaction: the large result, then more statements on the same lease.
        conn.execute("BEGIN")
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        got = conn.execute(*LARGE_QUERIES[0]).fetchall()
        assert got == wants[0], first_difference(got, wants[0])
        assert conn.execute("SELECT pg_backend_pid(), 7").fetchone() == (pid, 7)
        conn.execute("COMMIT")
        assert conn.execute("SELECT 'after'").fetchone() == ("after",)
    # Three 10 MB results went to the client: at least one of them through the path under test.
    assert_relayed_by(p, path, min_server_to_client=10_000_000)


# -- 4. tenants past the kernel's counter slots -------------------------------------------------

KERNEL_TENANT_SLOTS = 256  # HELIOS_SOCK_MAX_TENANTS


@pytest.mark.needs("metrics", "tenant_quotas")
@pytest.mark.timeout(150)
def test_tenants_past_the_kernel_slots_stay_in_user_space(proxy_factory):
    """The kernel counts per tenant in 256 slots. A tenant created after them runs in user space
    (counted exactly there), while an early tenant's leases still go through the kernel."""
    p = proxy_factory({"tenant_quotas": {"enabled": True}, "metrics": {"max_tenant_labels": 1000}},
                      path="kernel", mode="transaction", pool_size=2)
    for i in range(KERNEL_TENANT_SLOTS + 8):  # one connection creates one tenant
        with psycopg.connect(**p.conninfo(BENCH_USER, "bench",
                                          application_name=f"slot_{i:03d}").kwargs()):
            pass
    big = LARGE_QUERIES[0][0]

    def kernel_bytes_for(tenant: str, in_transaction: bool) -> float:
        time.sleep(SETTLE_SECONDS / 2)  # earlier leases' bytes are merged about once a second
        before = relayed_bytes(p)[("kernel", "server_to_client")]
        with psycopg.connect(**p.conninfo(BENCH_USER, "bench", application_name=tenant).kwargs(),
                             autocommit=True) as conn:
            # 30 MB, so that some of it goes to the kernel if it can. Inside a transaction the
            # second and third statements start on a lease whose first reply is read and whose
            # client has taken everything: each is spliced before it is sent. An autocommit
            # statement is spliced only if its reply stream reaches a message boundary while
            # nothing is queued for the client, which depends on timing.
            if in_transaction:
                conn.execute("BEGIN")
            for _ in range(3):
                assert len(conn.execute(big).fetchall()) == ROWS
            if in_transaction:
                conn.execute("COMMIT")
        time.sleep(SETTLE_SECONDS / 2)
        return relayed_bytes(p)[("kernel", "server_to_client")] - before

    late_tenant = f"slot_{KERNEL_TENANT_SLOTS + 4:03d}"
    late = kernel_bytes_for(late_tenant, in_transaction=False)
    early = kernel_bytes_for("slot_000", in_transaction=True)
    assert late == 0, f"a tenant past slot {KERNEL_TENANT_SLOTS} had {late:.0f} bytes spliced"
    assert early >= 10_000_000, f"an early tenant had only {early:.0f} bytes spliced"
    # Counted in user space: three autocommit queries, three leases.
    assert tenant_counts(p, late_tenant) == (3, 3)


# -- 5. COPY out, and the receive buffers ---------------------------------------------------------

COPY_SQL = ("COPY (SELECT i, repeat(md5(i::text), 30) FROM generate_series(1, 100000) AS i) "
            "TO STDOUT")


def copy_digest(conn) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    with conn.cursor().copy(COPY_SQL) as cp:
        for chunk in cp:
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


def recv_buffers_lent(p) -> float:
    """Receive buffers the workers' io_uring cannot fill right now (4096 per worker, minus
    helios_proxy_worker_recv_buffers_free)."""
    free = [v for n, _, v in p.metrics() if n == "helios_proxy_worker_recv_buffers_free"]
    assert free, "no helios_proxy_worker_recv_buffers_free samples"
    return sum(4096 - v for v in free)


@pytest.mark.needs("metrics")
@pytest.mark.timeout(150)
@pytest.mark.parametrize("path", PATHS)
def test_copy_out_is_complete_and_every_receive_buffer_comes_back(proxy_factory, pg, path):
    """About 100 MB of COPY out, twice, arrives byte-identical to a direct connection's, and
    once the clients are gone every receive buffer is back in the rings. (On the kernel path every
    receive that ends in EAGAIN still carries a buffer from the ring; a worker that kept them
    ran dry after about 1 GB and stopped reading every socket it owned.)"""
    p = proxy_factory(path=path, mode="session", pool_size=2)
    with psycopg.connect(**pg.conninfo(BENCH_USER, "bench"), autocommit=True) as direct:
        want = copy_digest(direct)
    assert want[0] > 90_000_000
    for _ in range(2):
        with psycopg.connect(**p.conninfo(BENCH_USER, "bench").kwargs(), autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert copy_digest(conn) == want
            assert conn.execute("SELECT 2").fetchone() == (2,)
    assert_relayed_by(p, path, min_server_to_client=2 * 90_000_000 if path == "kernel" else 1)
    deadline = time.monotonic() + SETTLE_SECONDS
    while recv_buffers_lent(p) != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert recv_buffers_lent(p) == 0, (
        f"{recv_buffers_lent(p):.0f} receive buffers missing with no client connected; "
        + ", ".join(f"{n}{labels} {v:.0f}" for n, labels, v in p.metrics()
                    if n in ("helios_proxy_worker_recv_buffers_free", "helios_proxy_worker_clients",
                             "helios_proxy_backend_connections", "helios_proxy_client_connections")))
