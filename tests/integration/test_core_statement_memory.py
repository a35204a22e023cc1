"""Memory for prepared statements (issue 14 item 9): the texts of statements that clients
prepared in transaction mode (prepared_statement_mode "track") are freed once no client holds
them, so rounds of clients preparing distinct statements do not grow the proxy; the bytes held
are a metric (helios_proxy_prepared_statement_bytes) and have a limit
(prepared_statement_memory_mb) past which a statement stays on its backend as in "named" mode."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from harness import APP_USER

STATEMENT_KB = 16
STATEMENTS_PER_CLIENT = 40
CLIENTS = 50


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _statement(round_no: int, client: int, n: int) -> str:
    pad = "x" * (STATEMENT_KB * 1024)
    return f"SELECT {n} AS n, '{round_no}-{client}-{n}' AS tag, length('{pad}') AS pad"


async def _client(proxy, round_no: int, client: int) -> None:
    conn = await asyncpg.connect(**proxy.conninfo(APP_USER, "app").asyncpg_kwargs())
    try:
        for n in range(STATEMENTS_PER_CLIENT):
            stmt = await conn.prepare(_statement(round_no, client, n))
            row = await stmt.fetchrow()
            assert row["n"] == n and row["pad"] == STATEMENT_KB * 1024
    finally:
        await conn.close()


async def _round(proxy, round_no: int) -> None:
    await asyncio.gather(*(_client(proxy, round_no, i) for i in range(CLIENTS)))


def _settle(proxy, timeout: float = 10.0) -> float:
    """Waits for the clients' disconnects to be processed; returns the bytes metric."""
    deadline = time.monotonic() + timeout
    held = proxy.metric("helios_proxy_prepared_statement_bytes")
    while held > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        held = proxy.metric("helios_proxy_prepared_statement_bytes")
    return held


@pytest.mark.needs("metrics")
@pytest.mark.timeout(240)
def test_statement_texts_are_freed_when_their_clients_leave(proxy_factory):
    p = proxy_factory(mode="transaction")
    pid = p.proc.pid
    per_round_mb = CLIENTS * STATEMENTS_PER_CLIENT * STATEMENT_KB / 1024
    rss = []
    for r in range(4):
        asyncio.run(_round(p, r))
        held = _settle(p)
        rss.append(_rss_kb(pid))
        print(f"round {r + 1}: {per_round_mb:.0f} MB of distinct statements; RSS {rss[-1]} kB; "
              f"statement bytes held after the clients left: {held:.0f}")
        # Nothing is held once every client is gone.
        assert held == 0, f"{held:.0f} bytes of statement text held with no client connected"
        assert p.metric("helios_proxy_prepared_statements") == 0
    grown_mb = (rss[3] - rss[0]) / 1024
    assert grown_mb < 8, (f"RSS grew {grown_mb:.1f} MB from round 1 to round 4 "
                          f"({per_round_mb:.0f} MB of statements per round): {rss}")


@pytest.mark.needs("metrics")
@pytest.mark.timeout(120)
def test_statement_memory_limit_keeps_new_statements_on_their_backend(proxy_factory):
    p = proxy_factory({"connection_pool": {"prepared_statement_memory_mb": 1}},
                      mode="transaction")

    async def run() -> list:
        conn = await asyncpg.connect(**p.conninfo(APP_USER, "app").asyncpg_kwargs())
        try:
            held = []
            for n in range(STATEMENTS_PER_CLIENT):  # 40 x 16 KB: past the 1 MB limit
                stmt = await conn.prepare(_statement(9, 0, n))
                assert (await stmt.fetchrow())["n"] == n
                held.append(p.metric("helios_proxy_prepared_statement_bytes"))
            # Every statement still runs, the tracked ones and those kept on the backend.
            for n in range(STATEMENTS_PER_CLIENT):
                stmt = await conn.prepare(_statement(9, 0, n))
                assert (await stmt.fetchrow())["n"] == n
            return held
        finally:
            await conn.close()

    held = asyncio.run(run())
    assert max(held) <= 1024 * 1024, held
    assert max(held) > 512 * 1024, held  # the limit was reached, not avoided
    assert _settle(p) == 0
