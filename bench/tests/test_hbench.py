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


def _data(helios_cpu=4.0, helios_tps=90.0, helios_lat=0.30, helios_mem=500.0, huge=None,
          helios_cpu_10k=20.0, helios_p99=1.2, pgb_cpu=17.0, pgb_cpu_10k=26.0, pgb_p99=1.45,
          extra_runs=()):
    runs = []
    for rep in range(3):
        runs += [_run("select_simple", "direct", tps=100.0 + rep, latency={"p99": 0.8}),
                 _run("select_simple", "pgbouncer", tps=63.0, proxy_us_per_txn=pgb_cpu,
                      latency={"p99": pgb_p99}),
                 _run("select_simple", "helios", tps=helios_tps + rep,
                      proxy_us_per_txn=helios_cpu, latency={"p99": helios_p99}),
                 _run("rate_10k", "direct", tps=10000.0, latency_avg_ms=0.25),
                 _run("rate_10k", "pgbouncer", tps=10000.0, latency_avg_ms=0.49,
                      proxy_us_per_txn=pgb_cpu_10k),
                 _run("rate_10k", "helios", tps=10000.0, latency_avg_ms=helios_lat,
                      proxy_us_per_txn=helios_cpu_10k)]
    runs += list(extra_runs)
    idle = [{"system": "helios", "clients": 10000, "bytes_per_client": helios_mem},
            {"system": "pgbouncer", "clients": 10000, "bytes_per_client": 823.0}]
    extra = {"idle": idle}
    if huge is not None:
        extra["idle_huge"] = [huge]
    return {"plan": dict(full_plan().__dict__), "runs": runs, "extra": extra, "errors": []}


def _verdicts(data):
    return {t.key: t.met for t in report.evaluate_targets(data)}


ALL_TARGETS = {"cpu", "tps", "lat", "mem", "huge", "cpu_pgb_sat", "cpu_pgb_10k", "p99_sat"}


def test_targets_met():
    huge = {"system": "helios", "ok": True, "clients": 100000,
            "opened": {"ok": 100000, "errors": 0}, "check": {"ok": 100000, "errors": 0},
            "status_after_pgbench": {"lost": 0}, "pgbench": {"ok": True}}
    v = _verdicts(_data(huge=huge))
    assert v == {k: True for k in ALL_TARGETS}


def test_targets_missed():
    huge = {"system": "helios", "ok": False, "clients": 100000,
            "opened": {"ok": 99990, "errors": 10}, "check": {"ok": 99990, "errors": 0}}
    v = _verdicts(_data(helios_cpu=5.1, helios_tps=80.0, helios_lat=0.40, helios_mem=601.0,
                        huge=huge, pgb_cpu=6.0, helios_cpu_10k=22.0, helios_p99=1.46))
    assert v == {k: False for k in ALL_TARGETS}


def test_pgbouncer_relative_targets_are_ratios_of_medians_at_the_boundary():
    # 0.8x exactly is met, just over is missed; p99 equal to PgBouncer's is met.
    t = {t.key: t for t in report.evaluate_targets(
        _data(helios_cpu=8.0, pgb_cpu=10.0, helios_cpu_10k=16.0, pgb_cpu_10k=20.0,
              helios_p99=1.45, pgb_p99=1.45))}
    assert (t["cpu_pgb_sat"].met, t["cpu_pgb_10k"].met, t["p99_sat"].met) == (True, True, True)
    assert t["cpu_pgb_sat"].helios.startswith("0.80×") and t["cpu_pgb_sat"].pgbouncer == "10.0 µs"
    v = _verdicts(_data(helios_cpu=8.1, pgb_cpu=10.0, helios_cpu_10k=16.2, pgb_cpu_10k=20.0,
                        helios_p99=1.451, pgb_p99=1.45))
    assert (v["cpu_pgb_sat"], v["cpu_pgb_10k"], v["p99_sat"]) == (False, False, False)
    # The median is what counts: one outlier run of PgBouncer does not move it.
    data = _data(helios_cpu=8.0, pgb_cpu=10.0)
    next(r for r in data["runs"] if r["system"] == "pgbouncer")["proxy_us_per_txn"] = 100.0
    assert _verdicts(data)["cpu_pgb_sat"] is True


def test_pgbouncer_relative_targets_need_pgbouncer_in_the_run():
    data = _data()
    data["runs"] = [r for r in data["runs"] if r["system"] != "pgbouncer"]
    v = _verdicts(data)
    assert (v["cpu_pgb_sat"], v["cpu_pgb_10k"], v["p99_sat"]) == (None, None, None)


def test_targets_judge_the_default_configuration_not_a_fixed_worker_count():
    # workers = 1 beats PgBouncer here, the default does not: the target is missed.
    w1 = [_run("select_simple", "helios-w1", tps=95.0, proxy_us_per_txn=5.0,
               latency={"p99": 1.0}) for _ in range(3)]
    data = _data(helios_cpu=15.0, pgb_cpu=17.0, helios_p99=2.0, extra_runs=w1)
    v = _verdicts(data)
    assert v["cpu_pgb_sat"] is False and v["p99_sat"] is False
    data["extra"]["systems"] = {"helios-w1": "heliosproxy, workers = 1"}
    text = report.render_summary(data)
    assert "## Workers: the default against fixed counts" in text
    row = next(l for l in text.splitlines() if l.startswith("| heliosproxy, workers = 1 |"))
    assert "| 5.0 | 0.29× |" in row  # 5.0 µs/txn against PgBouncer's 17.0
    # Without a fixed-count system the table is left out.
    assert "## Workers" not in report.render_summary(_data())


def test_worker_systems_config_sets_workers_only_when_fixed():
    from types import SimpleNamespace

    from hbench.systems import SPECS, ProxySettings, System
    pg = SimpleNamespace(host="127.0.0.1", port=5432)
    cfg = {n: System(SPECS[n], pg).config(ProxySettings())["proxy"]
           for n in ("helios", "helios-w1", "helios-w2")}
    assert "workers" not in cfg["helios"]  # the proxy's own default, whatever it is
    assert cfg["helios-w1"]["workers"] == 1 and cfg["helios-w2"]["workers"] == 2
    assert SPECS["helios-w1"].runs("rate_10k") and not SPECS["helios-w1"].runs("idle")
    assert SPECS["helios"].runs("idle")


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
