"""Prometheus metrics scraped during a pgbench run, checked against PostgreSQL's
pg_stat_activity and pgbench's own counts."""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from harness import BENCH_USER, pgbench

pytestmark = pytest.mark.needs("metrics")

POOL = 6
CLIENTS = 24
TENANT = "tenant_metrics"
BENCH_POOL = {"pool": "bench/bench", "pool_mode": "transaction"}
TENANT_LABELS = {"tenant_id": TENANT, "pool_mode": "transaction"}


def value(samples, name, **labels) -> float:
    return sum(v for n, lb, v in samples
               if n == name and all(lb.get(k) == str(x) for k, x in labels.items()))


def proxy_backends(pg) -> int:
    """Backends the proxy holds in PostgreSQL for the bench pool."""
    return pg.query("SELECT count(*) FROM pg_stat_activity WHERE usename = %s "
                    "AND datname = 'bench' AND backend_type = 'client backend'",
                    (BENCH_USER,), dbname="postgres")[0][0]


@pytest.mark.timeout(120)
def test_scrape_during_pgbench_agrees_with_postgres_and_pgbench(proxy_factory, pg):
    proxy = proxy_factory({"tenant_quotas": {"enabled": True}}, pool_size=POOL)
    ci = proxy.conninfo(BENCH_USER, "bench", application_name=TENANT)
    before = proxy.metrics()

    run = pgbench(ci, clients=CLIENTS, jobs=2, seconds=6, select_only=True, background=True)
    pairs, clients_seen, tenant_conns, qps = [], [], [], []
    start = time.monotonic()
    while run.running():
        m = proxy.metrics()
        pg_count = proxy_backends(pg)
        total = value(m, "helios_proxy_backend_connections", **BENCH_POOL)
        active = value(m, "helios_proxy_backend_connections_active", **BENCH_POOL)
        pool_max = value(m, "helios_proxy_backend_connections_max", **BENCH_POOL)
        if pool_max == 0:  # the pool is created by its first client
            time.sleep(0.05)
            continue
        assert pool_max == POOL
        assert 0 <= active <= total <= POOL, (active, total)
        assert pg_count <= POOL, pg_count
        if time.monotonic() - start > 1.5 and time.monotonic() - start < 5:
            pairs.append((total, pg_count))
            clients_seen.append(value(m, "helios_proxy_client_connections"))
            tenant_conns.append(value(m, "helios_proxy_tenant_connections", **TENANT_LABELS))
            qps.append(value(m, "helios_proxy_tenant_qps", **TENANT_LABELS))
        time.sleep(0.25)
    r = run.result()
    assert r.clean, r.describe()
    assert len(pairs) >= 5, pairs

    # Mid-run: the proxy reports the backends PostgreSQL sees (both sampled within ~ms; a
    # backend opened or closed between the two reads may differ by one).
    agree = sum(1 for total, pg_count in pairs if abs(total - pg_count) <= 1)
    assert agree >= 0.8 * len(pairs), pairs
    assert max(p[0] for p in pairs) == POOL, pairs  # 24 clients keep 6 backends busy
    # Every pgbench client is connected to the proxy during the run, under its tenant.
    assert statistics.median(clients_seen) == CLIENTS, clients_seen
    assert statistics.median(tenant_conns) == CLIENTS, tenant_conns
    # The tenant's current QPS tracks pgbench's rate (select-only: 1 query per transaction).
    assert 0.5 * r.tps <= statistics.median(qps) <= 2.0 * r.tps, (qps, r.tps)

    time.sleep(0.3)  # let the last releases and closes land
    after = proxy.metrics()
    d = lambda name, **lb: value(after, name, **lb) - value(before, name, **lb)  # noqa: E731

    # Leases: one per pgbench transaction, plus pgbench's few setup queries per client.
    acquires = d("helios_proxy_acquires_total", **BENCH_POOL)
    assert r.processed <= acquires <= r.processed + 3 * CLIENTS, (acquires, r.processed)
    assert d("helios_proxy_releases_total", **BENCH_POOL) == acquires
    assert d("helios_proxy_acquire_latency_seconds_count", **BENCH_POOL) == acquires
    # The proxy's own first lease of a new pool (learning the server's parameters for the
    # client's welcome) is not a client lease and is not timed.
    leases = d("helios_proxy_lease_duration_seconds_count", **BENCH_POOL)
    assert acquires - CLIENTS <= leases <= acquires, (leases, acquires)
    le_inf = value(after, "helios_proxy_acquire_latency_seconds_bucket", le="+Inf", **BENCH_POOL)
    assert le_inf == value(after, "helios_proxy_acquire_latency_seconds_count", **BENCH_POOL)
    txns = d("helios_proxy_tenant_transactions_total", **TENANT_LABELS)
    assert r.processed <= txns <= r.processed + 3 * CLIENTS, (txns, r.processed)
    queries = d("helios_proxy_tenant_queries_total", **TENANT_LABELS)
    assert r.processed <= queries <= r.processed + 3 * CLIENTS, (queries, r.processed)
    # Bytes: every transaction sent a query and got a row back (summed over the data paths: on
    # the kernel path the replies are counted under data_path="kernel").
    sent = d("helios_proxy_bytes_total", direction="client_to_server")
    got = d("helios_proxy_bytes_total", direction="server_to_client")
    assert sent >= r.processed * len("SELECT abalance FROM pgbench_accounts WHERE aid = 1;")
    assert got >= r.processed * 20

    # Quiescent: every client gone, the pool's backends idle, and PostgreSQL agrees exactly.
    assert value(after, "helios_proxy_client_connections") == 0
    assert value(after, "helios_proxy_tenant_connections", **TENANT_LABELS) == 0
    assert value(after, "helios_proxy_backend_connections_active", **BENCH_POOL) == 0
    assert value(after, "helios_proxy_backend_connections", **BENCH_POOL) == proxy_backends(pg)
    assert value(after, "helios_proxy_waiting_clients", **BENCH_POOL) == 0


@pytest.mark.timeout(90)
def test_waiting_clients_and_queue_under_a_one_backend_pool(proxy_factory, pg):
    # One backend, many clients holding it for a while: the queue is visible in the metrics
    # and in /api/v1/pool/stats as pgbench sees it (clients waiting for their turn).
    proxy = proxy_factory({"tenant_quotas": {"enabled": True}}, pool_size=1)
    ci = proxy.conninfo(BENCH_USER, "bench", application_name=TENANT)
    run = pgbench(ci, clients=8, jobs=2, seconds=3, script="SELECT pg_sleep(0.05);\n",
                  background=True)
    waiting, queued_api, tenant_queued = [], [], []
    while run.running():
        m = proxy.metrics()
        waiting.append(value(m, "helios_proxy_waiting_clients", **BENCH_POOL))
        tenant_queued.append(value(m, "helios_proxy_tenant_waiting_clients", **TENANT_LABELS))
        queued_api.append(proxy.admin_get("/api/v1/pool/stats").json()["queued_clients"])
        time.sleep(0.2)
    r = run.result()
    assert r.clean, r.describe()
    # 8 clients on 1 backend: most of them wait at any moment.
    assert statistics.median(waiting[2:-2]) >= 5, waiting
    assert statistics.median(queued_api[2:-2]) >= 5, queued_api
    # The acquire latency reflects the queue: p99 well above one 50 ms statement.
    stats = proxy.admin_get("/api/v1/pool/stats").json()
    bench = next(p for p in stats["pools"] if p["name"] == "bench/bench")
    assert bench["p99_acquire_ms"] >= 50, bench
    assert bench["max"] == 1


@pytest.mark.timeout(60)
def test_tenant_label_cardinality_is_bounded(proxy_factory):
    proxy = proxy_factory({"tenant_quotas": {"enabled": True},
                           "metrics": {"max_tenant_labels": 3}})
    conns = []
    for i in range(6):
        c = proxy.connect(application_name=f"tenant_card_{i}")
        c.execute("SELECT 1")
        conns.append(c)
    m = proxy.metrics()
    ids = {lb["tenant_id"] for n, lb, v in m if n == "helios_proxy_tenant_connections"}
    assert len(ids) == 4 and "other" in ids, ids  # 3 named + "other"
    total = value(m, "helios_proxy_tenant_connections")
    assert total == 6  # nothing lost in the summing
    members = value(m, "helios_proxy_tenant_label_members", tenant_id="other")
    named = len(ids - {"other"})
    # Every tenant seen is either named or in "other" (the harness's default tenant included).
    assert named + members == value(m, "helios_proxy_tenants")


@pytest.mark.timeout(60)
def test_scrape_is_cheap_and_concurrent_with_load(proxy_factory):
    # Scrapes read counters only: 50 scrapes during pgbench cost the run nothing visible.
    proxy = proxy_factory(pool_size=4)
    ci = proxy.conninfo(BENCH_USER, "bench")
    stop = threading.Event()
    errors, count = [], [0]

    def scraper():
        while not stop.is_set():
            try:
                proxy.metrics()
                count[0] += 1
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
            time.sleep(0.05)

    t = threading.Thread(target=scraper)
    t.start()
    try:
        r = pgbench(ci, clients=8, jobs=2, seconds=3, select_only=True)
    finally:
        stop.set()
        t.join()
    assert r.clean, r.describe()
    assert not errors, errors[:3]
    assert count[0] >= 20


@pytest.mark.timeout(60)
def test_pins_by_reason_and_pinned_clients(proxy_factory):
    proxy = proxy_factory(mode="transaction")
    before = proxy.metric("helios_proxy_pins_total", reason="temp_table")
    c = proxy.connect()
    c.execute("CREATE TEMP TABLE ops_pin (x int)")
    assert proxy.metric("helios_proxy_pins_total", reason="temp_table") == before + 1
    assert proxy.metric("helios_proxy_pinned_clients") == 1
    c.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and proxy.metric("helios_proxy_pinned_clients") != 0:
        time.sleep(0.05)
    assert proxy.metric("helios_proxy_pinned_clients") == 0


# Errors sent to clients and reloads are counted by the core (SharedContext::metrics).
@pytest.mark.timeout(60)
def test_errors_by_sqlstate(proxy_factory):
    import psycopg

    proxy = proxy_factory()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**proxy.conninfo(password="wrong").kwargs())
    assert proxy.metric("helios_proxy_errors_total", sqlstate="28P01") == 1


@pytest.mark.timeout(60)
def test_reloads_are_counted_by_result(proxy_factory):
    proxy = proxy_factory()
    assert proxy.admin_post("/api/v1/reload").status_code == 200
    good = proxy.config_path.read_text()
    proxy.config_path.write_text(good + "\n[nonsense\n")
    assert proxy.admin_post("/api/v1/reload").status_code == 422
    proxy.config_path.write_text(good)
    assert proxy.metric("helios_proxy_reloads_total", result="ok") == 1
    assert proxy.metric("helios_proxy_reloads_total", result="failed") == 1
