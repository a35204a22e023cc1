"""Statement mode: single statements are pooled per statement; transactions are refused with a
clear ErrorResponse.

Expected error (HeliosProxy): SQLSTATE 0A000 (feature_not_supported), a message that says
transactions are not allowed in statement pooling mode, and the client may go on.
"""

import psycopg
import pytest

from harness import APP_USER, ROLES, BackendSampler
from harness.wire import RawConn, query_message

STATEMENT_MODE_SQLSTATE = "0A000"


@pytest.fixture
def sproxy(proxy_factory):
    return proxy_factory(mode="statement", pool_size=2)


def test_statement_mode_runs_single_statements(sproxy, pg):
    conns = [sproxy.connect(APP_USER, "app", prepare_threshold=None) for _ in range(10)]
    with BackendSampler(pg) as sampler:
        for round_ in range(5):
            for i, c in enumerate(conns):
                assert c.execute("SELECT %s::int + %s::int", (i, round_)).fetchone() == \
                    (i + round_,)
    assert sampler.max_by_user.get(APP_USER, 0) <= 2, sampler.summary()


@pytest.mark.parametrize("sql", ["BEGIN", "START TRANSACTION ISOLATION LEVEL SERIALIZABLE"])
def test_statement_mode_refuses_transactions(sproxy, sql):
    with RawConn(sproxy.host, sproxy.port) as c:
        c.login(APP_USER, ROLES[APP_USER].password, "app")
        c.send(query_message(sql))
        ex = c.read_response(5)
    errors = ex.errors
    assert errors, f"{sql!r} was not refused: {ex.describe()}"
    f = errors[0].fields()
    msg = f.get("M", "").lower()
    assert "transaction" in msg and "statement" in msg, f
    if not sproxy.unsupported("statement_mode_error"):
        assert f.get("C") == STATEMENT_MODE_SQLSTATE, f
        assert f.get("S") == "ERROR", f
        # An ErrorResponse then ReadyForQuery: the session goes on, nothing ran.
        assert [m.kind for m in ex.messages] == [b"E", b"Z"], ex.describe()
        assert ex.messages[-1].payload == b"I", ex.describe()


@pytest.mark.needs("statement_mode_error")
def test_statement_mode_client_continues_after_refusal(sproxy):
    conn = sproxy.connect(APP_USER, "app", prepare_threshold=None)
    with pytest.raises(psycopg.Error) as ei:
        conn.execute("BEGIN")
    assert ei.value.sqlstate == STATEMENT_MODE_SQLSTATE, repr(ei.value)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.execute("SELECT 'still here'").fetchone() == ("still here",)
