"""pgbench through transaction mode: 1,000 clients multiplexed onto 20 backend connections."""

import pytest

from harness import BENCH_USER, BackendSampler, pgbench, psql

POOL = 20
CLIENTS = 1000


@pytest.mark.timeout(240)
@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_pgbench_1000_clients_on_20_backends(proxy_factory, pg, protocol):
    proxy = proxy_factory(mode="transaction", pool_size=POOL)
    ci = proxy.conninfo(BENCH_USER, "bench")
    with BackendSampler(pg, interval=0.05) as sampler:
        r = pgbench(ci, clients=CLIENTS, jobs=2, seconds=6, select_only=True,
                    protocol=protocol, progress=1)
    assert r.clean, r.describe()
    assert r.clients == CLIENTS, r.describe()
    # Every client ran transactions, not just a lucky few.
    assert r.processed >= CLIENTS, r.describe()
    assert sampler.errors == [], sampler.errors
    assert sampler.samples >= 40, sampler.summary()
    peak = sampler.max_by_user.get(BENCH_USER, 0)
    assert 0 < peak <= POOL, (f"pg_stat_activity showed {peak} backends for {BENCH_USER} "
                              f"(pool max {POOL}); {sampler.summary()}")
    # The proxy still serves new clients afterwards.
    assert psql(ci, "SELECT count(*) FROM pgbench_branches").rows == [["1"]]


@pytest.mark.timeout(120)
def test_pgbench_tpcb_transactions_commit_through_the_pool(proxy_factory, pg):
    # Multi-statement read-write transactions (BEGIN ... END) keep one backend for the whole
    # transaction: every committed transaction leaves exactly one pgbench_history row.
    proxy = proxy_factory(mode="transaction", pool_size=8)
    ci = proxy.conninfo(BENCH_USER, "bench")
    before = pg.query("SELECT count(*), coalesce(sum(delta), 0) FROM pgbench_history",
                      dbname="bench")[0]
    with BackendSampler(pg, interval=0.05) as sampler:
        r = pgbench(ci, clients=64, jobs=2, transactions=50, builtin="tpcb-like",
                    protocol="extended")
    assert r.clean, r.describe()
    assert r.processed == 64 * 50, r.describe()
    after = pg.query("SELECT count(*), coalesce(sum(delta), 0) FROM pgbench_history",
                     dbname="bench")[0]
    assert after[0] - before[0] == 64 * 50
    # The balances moved by exactly the deltas recorded in history (no half transactions).
    tellers, branches, accounts = pg.query(
        "SELECT (SELECT sum(tbalance) FROM pgbench_tellers), "
        "(SELECT sum(bbalance) FROM pgbench_branches), "
        "(SELECT sum(abalance) FROM pgbench_accounts)", dbname="bench")[0]
    assert tellers == branches == accounts == after[1]
    assert sampler.max_by_user.get(BENCH_USER, 0) <= 8, sampler.summary()
