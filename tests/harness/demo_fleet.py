"""The demo's fleet scene (scripts/demo): two heliosproxy instances in front of the same
PostgreSQL share one tenant's max_connections through a throwaway redis-server, so the tenant
gets its limit across both instances, not once per instance."""

from __future__ import annotations

import time
from typing import Callable

from .pgcluster import APP_USER, ROLES, PgCluster
from .proxy import start_proxy
from .redis_server import RedisServer, redis_available
from .wire import LoginError, RawConn

TENANT, LIMIT = "tenant_shared_initech", 4


def _login(proxy) -> RawConn | str:
    """A held connection as TENANT, or the SQLSTATE it was refused with."""
    c = RawConn(proxy.host, proxy.port)
    try:
        c.login(APP_USER, ROLES[APP_USER].password, "app", extra={"application_name": TENANT})
        return c
    except LoginError as e:
        c.close()
        return e.fields.get("C") or "?"


def _wait_for_each_other(proxies, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(p.admin_get("/api/v1/fleet", timeout=2).json().get("live_instances")
                   == len(proxies) for p in proxies):
                return True
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.05)
    return False


def fleet_scene(pg: PgCluster, say: Callable[[str], None]) -> bool:
    """Runs the scene; returns False if the quota did not hold across the instances."""
    why = redis_available()
    if why:
        say(f"   skipped: {why}")
        return True
    rule = {"tenant_pattern": "tenant_shared_*", "max_connections": LIMIT}
    with RedisServer() as redis:
        proxies = []
        try:
            for i in range(2):
                proxies.append(start_proxy(pg, {
                    "proxy": {"mode": "transaction"},
                    "fleet": {"redis_url": redis.url, "instance_id": f"demo-{i}",
                              "renew_interval": "100ms", "instance_ttl": "1s"},
                    "tenant_quotas": {"enabled": True, "identifier": "application_name",
                                      "limits": [rule]},
                }))
            say(f"   redis-server on 127.0.0.1:{redis.port}; instances on ports "
                + " and ".join(str(p.port) for p in proxies)
                + f"; {TENANT}: max_connections = {LIMIT} for the whole fleet")
            if not _wait_for_each_other(proxies):
                say("   !! the instances did not see each other in Redis within 5 s")
                return False
            held, lines = [], []
            # Alternate between the instances: LIMIT + 2 attempts, the last two must be refused.
            for i in range(LIMIT + 2):
                p = proxies[i % 2]
                r = _login(p)
                if isinstance(r, str):
                    lines.append(f"     connection #{i + 1} on port {p.port}: refused ({r})")
                else:
                    held.append(r)
                    lines.append(f"     connection #{i + 1} on port {p.port}: accepted")
            for line in lines:
                say(line)
            refused = [line for line in lines if "refused (53300)" in line]
            ok = len(held) == LIMIT and len(refused) == 2
            say(f"     {len(held)} accepted across both instances"
                + ("" if ok else f"   !! expected exactly {LIMIT} and two 53300 refusals"))
            for c in held:
                c.close()
            return ok
        finally:
            for p in proxies:
                try:
                    p.stop(expect_exit=0)
                finally:
                    p.cleanup()
