"""Unit tests of the bench's own logic (no PostgreSQL needed):
  PYTHONPATH=tests:bench /usr/bin/python3 -m pytest -q bench/tests
"""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess

import pytest

from hbench import latency, noise, procfs, report
from hbench.idle_clients import IdleClient, State
from hbench.plan import full_plan
from hbench.stats import agg, fmt_bytes


# -- latency -------------------------------------------------------------------------------------
def test_read_logs_parses_every_thread_file_and_counts_failed_and_skipped(tmp_path):
    prefix = str(tmp_path / "run.txlog")
    (tmp_path / "run.txlog.123").write_text("0 1 250 0 1700000000 1 0\n1 1 failed 0 1 2 0\n")
    (tmp_path / "run.txlog.123.1").write_text("2 1 1750 0 1 3 40\n3 1 skipped 0 1 4 0\n")
    log = latency.read_logs(prefix)
    assert log.latencies_ms == [0.25, 1.75]
    assert (log.failed, log.skipped) == (1, 1)
    assert not list(tmp_path.iterdir())  # removed after reading


def test_percentiles_nearest_rank():
    vals = [float(i) for i in range(1, 101)]
    assert latency.percentile(vals, 50) == 50.0
    assert latency.percentile(vals, 99) == 99.0
    assert latency.percentile(vals, 100) == 100.0
    s = latency.summary(vals)
    assert s["mean"] == pytest.approx(50.5) and s["max"] == 100.0


def test_cdf_points_are_monotonic_and_reach_the_maximum():
    vals = sorted([0.1 * i for i in range(1, 5001)])
    pts = latency.cdf_points(vals, points=100)
    xs = [x for x, _ in pts]
    ys = [y for _, y in pts]
    assert xs == sorted(xs) and ys == sorted(ys)
    assert pts[-1] == (vals[-1], 1.0)


# -- stats ---------------------------------------------------------------------------------------
def test_agg_median_min_max_skips_missing():
    a = agg([3.0, None, 1.0, 2.0, float("nan")])
    assert (a.median, a.lo, a.hi, a.n) == (2.0, 1.0, 3.0, 3)
    assert a.fmt(0) == "2 (1–3)"
    assert agg([None]) is None
    assert fmt_bytes(1536) == "1.5 KiB"


# -- targets -------------------------------------------------------------------------------------
def _run(scenario, system, **kw):
    r = {"scenario": scenario, "system": system, "ok": True, "tps": 0.0}
    r.update(kw)
    return r


def _data(helios_cpu=4.0, helios_tps=90.0, helios_lat=0.30, helios_mem=500.0, huge=None):
    runs = []
    for rep in range(3):
        runs += [_run("select_simple", "direct", tps=100.0 + rep),
                 _run("select_simple", "pgbouncer", tps=63.0, proxy_us_per_txn=17.0),
                 _run("select_simple", "helios", tps=helios_tps + rep,
                      proxy_us_per_txn=helios_cpu),
                 _run("rate_10k", "direct", tps=10000.0, latency_avg_ms=0.25),
                 _run("rate_10k", "pgbouncer", tps=10000.0, latency_avg_ms=0.49),
                 _run("rate_10k", "helios", tps=10000.0, latency_avg_ms=helios_lat)]
    idle = [{"system": "helios", "clients": 10000, "bytes_per_client": helios_mem},
            {"system": "pgbouncer", "clients": 10000, "bytes_per_client": 823.0}]
    extra = {"idle": idle}
    if huge is not None:
        extra["idle_huge"] = [huge]
    return {"plan": dict(full_plan().__dict__), "runs": runs, "extra": extra, "errors": []}


def _verdicts(data):
    return {t.key: t.met for t in report.evaluate_targets(data)}


def test_targets_met():
    huge = {"system": "helios", "ok": True, "clients": 100000,
            "opened": {"ok": 100000, "errors": 0}, "check": {"ok": 100000, "errors": 0},
            "status_after_pgbench": {"lost": 0}, "pgbench": {"ok": True}}
    v = _verdicts(_data(huge=huge))
    assert v == {"cpu": True, "tps": True, "lat": True, "mem": True, "huge": True}


def test_targets_missed():
    huge = {"system": "helios", "ok": False, "clients": 100000,
            "opened": {"ok": 99990, "errors": 10}, "check": {"ok": 99990, "errors": 0}}
    v = _verdicts(_data(helios_cpu=5.1, helios_tps=80.0, helios_lat=0.40, helios_mem=601.0,
                        huge=huge))
    assert v == {"cpu": False, "tps": False, "lat": False, "mem": False, "huge": False}


def test_targets_not_measured_without_runs_or_at_reduced_count():
    data = {"plan": {}, "runs": [], "extra": {}, "errors": []}
    assert set(_verdicts(data).values()) == {None}
    huge = {"system": "helios", "ok": True, "clients": 17952, "limited_by": "RLIMIT_NOFILE",
            "opened": {"ok": 17952, "errors": 0}, "check": {"ok": 17952, "errors": 0}}
    t = {t.key: t for t in report.evaluate_targets(_data(huge=huge))}["huge"]
    assert t.met is None and "RLIMIT_NOFILE" in t.note


def test_summary_names_every_target_and_ratio():
    text = report.render_summary(_data())
    for name, *_ in [t[1:] for t in report.TARGETS]:
        assert name in text
    assert "0.90×" in text  # median 91 / median 101 tps vs direct
    assert "**met**" in text


# -- /proc accounting ----------------------------------------------------------------------------
def test_tree_cpu_keeps_the_cpu_of_an_exited_child():
    before = procfs.tree_cpu([os.getpid()])
    subprocess.run(["/usr/bin/python3", "-c",
                    "import time\nt=time.process_time()\nwhile time.process_time()-t<0.3: pass"],
                   check=True)
    after = procfs.tree_cpu([os.getpid()])
    assert after - before >= 0.25


def test_other_load_is_machine_minus_ours():
    a = noise.CpuSnapshot(0.0, procfs.MachineCpu(10.0, 100.0), 4.0)
    b = noise.CpuSnapshot(2.0, procfs.MachineCpu(13.0, 104.0), 6.5)
    assert b.other_cores(a) == pytest.approx(0.25)
    assert b.machine_cores(a) == pytest.approx(1.5)


def test_rss_of_self_is_plausible():
    assert 1 << 20 < procfs.rss_bytes(os.getpid()) < 1 << 32


# -- idle client protocol ------------------------------------------------------------------------
class FakeTransport:
    def __init__(self):
        self.out = bytearray()
        self.closed = False

    def write(self, data):
        self.out += data

    def get_extra_info(self, _name):
        return None

    def abort(self):
        self.closed = True

    close = abort


def _msg(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def test_idle_client_login_split_byte_by_byte_then_query():
    loop = asyncio.new_event_loop()
    try:
        c = IdleClient("u", "pw", "db", "app", loop)
        t = FakeTransport()
        c.connection_made(t)
        assert b"user\0u\0" in t.out and b"application_name\0app\0" in t.out
        server = (_msg(b"R", struct.pack("!I", 0)) + _msg(b"S", b"TimeZone\0UTC\0")
                  + _msg(b"K", struct.pack("!II", 1, 2)) + _msg(b"Z", b"I"))
        for i in range(len(server)):
            c.data_received(server[i:i + 1])
        assert c.state == State.IDLE and c.ready.result() is True
        done = c.query(loop)
        assert t.out.endswith(b"Q\0\0\0\rSELECT 1\0")
        c.data_received(_msg(b"E", b"SERROR\0C57014\0Mcanceled\0\0") + _msg(b"Z", b"I"))
        assert done.result() == "57014 canceled" and c.state == State.IDLE
    finally:
        loop.close()


def test_idle_client_login_error_fails_ready():
    loop = asyncio.new_event_loop()
    try:
        c = IdleClient("u", "pw", "db", "", loop)
        t = FakeTransport()
        c.connection_made(t)
        c.data_received(_msg(b"E", b"SFATAL\0C53300\0Mtoo many clients\0\0"))
        assert c.state == State.CLOSED and t.closed
        with pytest.raises(RuntimeError, match="53300"):
            c.ready.result()
    finally:
        loop.close()


def test_timed_logs_and_latency_over_time(tmp_path):
    prefix = str(tmp_path / "a.txlog")
    (tmp_path / "a.txlog.9").write_text(
        "0 0 1000 0 100 0\n0 1 3000 0 100 400000\n1 0 failed 0 100 500000\n"
        "1 1 5000 0 101 200000\n")
    samples = latency.read_timed_logs(prefix)
    assert samples == [(100.0, 1.0), (100.4, 3.0), (101.2, 5.0)]
    bins = latency.over_time(samples, t0=100.0, bin_s=0.5)
    assert [(b["t"], b["n"], b["p99"]) for b in bins] == [(0.0, 2, 3.0), (1.0, 1, 5.0)]


def test_noisy_runs_are_flagged_in_the_verdict():
    data = _data()
    for r in data["runs"]:
        if r["scenario"] == "rate_10k":
            r["noisy"] = True
    t = {t.key: t for t in report.evaluate_targets(data)}
    assert t["lat"].noisy and not t["cpu"].noisy
    assert "(noisy runs)" in "\n".join(report.targets_table(data))
