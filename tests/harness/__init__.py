"""Test harness for HeliosProxy: throwaway PostgreSQL clusters, the proxy (or PgBouncer as a
stand-in), client runners (psql, pgbench), a pg_stat_activity sampler and a raw wire client.

Used by tests/integration, scripts/demo, scripts/start-postgres and bench/. Python 3.11, stdlib
plus Debian's psycopg 3 / asyncpg / requests. Everything is bounded in time and cleaned up even
when the calling process is killed (see reaper.py).
"""

from .util import HarnessError, free_port, wait_until
from .pgcluster import PgCluster, Role, ROLES, SUPERUSER, AUTH_USER, APP_USER, BENCH_USER, \
    MD5_USER, TENANT_USERS, AUTH_QUERY, HELIOS_AUTH_QUERY
from .proxy import (ProxyError, DataPathUnavailable, Proxy, HeliosProxy, PgBouncerProxy,
                    ConnInfo, default_config, deep_merge, start_proxy, target_name,
                    helios_binary)
from .clients import psql, PsqlResult, pgbench, pgbench_init, PgbenchResult, PgError
from .sampler import BackendSampler
from .replicaset import Replica, ReplicaSet
from .toml_writer import dumps as toml_dumps
from .redis_server import RedisServer, redis_available

__all__ = [
    "HarnessError", "free_port", "wait_until",
    "PgCluster", "Role", "ROLES", "SUPERUSER", "AUTH_USER", "APP_USER", "BENCH_USER",
    "MD5_USER", "TENANT_USERS", "AUTH_QUERY", "HELIOS_AUTH_QUERY",
    "ProxyError", "DataPathUnavailable", "Proxy", "HeliosProxy", "PgBouncerProxy", "ConnInfo",
    "default_config", "deep_merge", "start_proxy", "target_name", "helios_binary",
    "psql", "PsqlResult", "pgbench", "pgbench_init", "PgbenchResult", "PgError",
    "BackendSampler", "toml_dumps", "RedisServer", "redis_available", "Replica", "ReplicaSet",
]
