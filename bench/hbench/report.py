"""summary.md from results.json: the targets table (met or missed), the scenario tables with
ratios against direct and PgBouncer, idle-client memory, the 100k run, noise, and errors.

Works on the JSON alone, so `bench/run --report DIR` can re-render an old run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .stats import Agg, agg, fmt, fmt_agg, fmt_bytes, fmt_ratio, ratio

SYSTEM_ORDER = ["direct", "pgbouncer", "helios", "helios-w1", "helios-w2", "helios-baseline",
                "helios-kernel"]
WORKER_SYSTEMS = ["helios", "helios-w1", "helios-w2"]  # the default and the fixed counts

SCENARIO_TITLES = {
    "select_simple": "pgbench -S, simple protocol, c16 (saturation)",
    "select_extended": "pgbench -S -M extended, c16 (saturation)",
    "rate_10k": "pgbench -S -R 10000, c16 (fixed offered load)",
    "connect_storm": "pgbench -S -C, c16: a new connection and SCRAM login per transaction "
                     "(1-iteration verifier)",
    "c1000": "pgbench -S, 1000 clients through a pool of 20 backends",
    "pinned": "pgbench -S c16, PostgreSQL + pgbench pinned to CPU0, proxy to CPU1",
}

# The project's targets (issues 8 and 18), with the baseline each issue measured on this machine
# kind: PgBouncer 1.18's (issue 8), heliosproxy's own against PgBouncer in the same run (issue 18).
TARGETS = [
    ("cpu", "proxy CPU per transaction at saturation", "≤ 5 µs", "PgBouncer ~17 µs"),
    ("tps", "pgbench -S c16 tps through the proxy", "≥ 0.85× direct", "PgBouncer 0.63×"),
    ("lat", "added latency at 10k tps", "≤ +0.08 ms", "PgBouncer +0.24 ms"),
    ("mem", "memory per idle client", "≤ 600 B", "PgBouncer 823 B"),
    ("huge", "100k clients on 100 backends", "0 errors", "–"),
    ("cpu_pgb_sat", "CPU per transaction ≤ 0.8× PgBouncer (saturation)", "≤ 0.80× PgBouncer",
     "1.4× (14.8–18.4 vs 10.4–11.1 µs)"),
    ("cpu_pgb_10k", "CPU per transaction ≤ 0.8× PgBouncer (10k tps)", "≤ 0.80× PgBouncer",
     "1.2× (26.1–27.4 vs 20.5–22.6 µs)"),
    ("p99_sat", "p99 at saturation ≤ PgBouncer", "≤ 1.00× PgBouncer", "2.07 vs 1.45 ms"),
]
PGB_CPU_RATIO = 0.8


@dataclass
class TargetResult:
    key: str
    name: str
    goal: str
    baseline: str
    helios: str
    pgbouncer: str
    direct: str
    met: Optional[bool]  # None = not measured
    note: str = ""
    noisy: bool = False  # a run behind the figure saw other load over the interference limit


def runs_of(data: dict, scenario: str, system: str) -> list[dict]:
    return [r for r in data["runs"] if r["scenario"] == scenario and r["system"] == system]


def field_agg(data: dict, scenario: str, system: str, key: str) -> Optional[Agg]:
    return agg(r.get(key) for r in runs_of(data, scenario, system) if r.get("ok"))


def lat_agg(data: dict, scenario: str, system: str, key: str) -> Optional[Agg]:
    return agg((r.get("latency") or {}).get(key) for r in runs_of(data, scenario, system)
               if r.get("ok"))


def proxy_cost_key(system: str) -> str:
    """On the kernel path the proxy's work moves into softirq/kworkers: count what no process of
    ours was charged for, too."""
    return "kernel_cost_us_per_txn" if system == "helios-kernel" else "proxy_us_per_txn"


def _prepare(data: dict) -> None:
    for r in data["runs"]:
        if r.get("proxy_us_per_txn") is not None and r.get("unattributed_us_per_txn") is not None:
            r["kernel_cost_us_per_txn"] = r["proxy_us_per_txn"] + r["unattributed_us_per_txn"]


def idle_recs(data: dict, key: str, system: str) -> list[dict]:
    return [r for r in data["extra"].get(key, []) if r.get("system") == system]


def _noisy(data: dict, scenario: str, *systems: str) -> bool:
    return any(r.get("noisy") for s in systems for r in runs_of(data, scenario, s))


def evaluate_targets(data: dict) -> list[TargetResult]:
    _prepare(data)
    out = []
    h, pb, d = "helios", "pgbouncer", "direct"
    # 1. CPU per transaction at saturation
    hc = field_agg(data, "select_simple", h, "proxy_us_per_txn")
    pc = field_agg(data, "select_simple", pb, "proxy_us_per_txn")
    out.append(TargetResult("cpu", *TARGETS[0][1:], fmt_agg(hc, 1) + " µs" if hc else "–",
                            fmt_agg(pc, 1) + " µs" if pc else "–", "0 (no proxy)",
                            None if hc is None else hc.median <= 5.0,
                            "utime+stime of the proxy process over the select_simple runs / "
                            "transactions", _noisy(data, "select_simple", h)))
    # 2. tps ratio
    ht, pt, dt = (field_agg(data, "select_simple", s, "tps") for s in (h, pb, d))
    hr, pr = ratio(ht, dt), ratio(pt, dt)
    out.append(TargetResult("tps", *TARGETS[1][1:], f"{fmt_ratio(hr)} ({fmt_agg(ht)} tps)",
                            f"{fmt_ratio(pr)} ({fmt_agg(pt)} tps)", f"{fmt_agg(dt)} tps",
                            None if hr is None else hr >= 0.85, "median tps / median direct",
                            _noisy(data, "select_simple", h, d)))
    # 3. added latency at fixed load
    hl, pl, dl = (field_agg(data, "rate_10k", s, "latency_avg_ms") for s in (h, pb, d))
    note = "pgbench latency average (from the scheduled start) minus direct's"
    rate = data["plan"].get("rate", 10000)
    short = [s for s in (h, pb, d) if (a := field_agg(data, "rate_10k", s, "tps"))
             and a.median < 0.95 * rate]
    if short:
        note += f"; did not sustain {rate} tps: {', '.join(short)}"
    if hl is not None and dl is not None and hl.median < dl.median:
        note += "; direct slower than through the proxy: noise dominates this run"
    hadd = None if hl is None or dl is None else hl.median - dl.median
    padd = None if pl is None or dl is None else pl.median - dl.median
    out.append(TargetResult("lat", *TARGETS[2][1:],
                            "–" if hadd is None else f"{hadd:+.3f} ms ({hl.median:.3f} ms)",
                            "–" if padd is None else f"{padd:+.3f} ms ({pl.median:.3f} ms)",
                            f"{dl.median:.3f} ms" if dl else "–",
                            None if hadd is None else hadd <= 0.08, note,
                            _noisy(data, "rate_10k", h, d)))
    # 4. idle memory
    hm = agg(r.get("bytes_per_client") for r in idle_recs(data, "idle", h))
    pm = agg(r.get("bytes_per_client") for r in idle_recs(data, "idle", pb))
    dm = agg(r.get("bytes_per_client") for r in idle_recs(data, "idle", d))
    n = next((r["clients"] for r in idle_recs(data, "idle", h)), None)
    out.append(TargetResult("mem", *TARGETS[3][1:], f"{fmt_agg(hm)} B" if hm else "–",
                            f"{fmt_agg(pm)} B" if pm else "–",
                            f"{fmt_bytes(dm.median)} per backend (not comparable)" if dm
                            else "–", None if hm is None else hm.median <= 600,
                            f"(proxy RSS with {n or '?'} idle clients − RSS before) / clients"))
    # 5. 100k
    hh = idle_recs(data, "idle_huge", h)
    ph = idle_recs(data, "idle_huge", pb)
    limited = hh[0].get("limited_by") if hh else None
    met = None if not hh or limited else (hh[0].get("ok", False) and _huge_errors(hh[0]) == 0)
    note = "logins + SELECT 1 on every client + pgbench beside them"
    if limited:
        note = f"not measured at 100k: {limited}"
    out.append(TargetResult("huge", *TARGETS[4][1:], _huge_cell(hh), _huge_cell(ph),
                            "– (max_connections)", met, note))
    # 6-8. against PgBouncer in the same run (issue 18): the default configuration
    for i, (key, scenario) in enumerate((("cpu_pgb_sat", "select_simple"),
                                         ("cpu_pgb_10k", "rate_10k")), start=5):
        hc = field_agg(data, scenario, h, "proxy_us_per_txn")
        pc = field_agg(data, scenario, pb, "proxy_us_per_txn")
        r = ratio(hc, pc)
        out.append(TargetResult(
            key, *TARGETS[i][1:],
            "–" if hc is None else f"{fmt_ratio(r)} ({fmt_agg(hc, 1)} µs)" if r is not None
            else f"{fmt_agg(hc, 1)} µs",
            f"{fmt_agg(pc, 1)} µs" if pc else "–", "0 (no proxy)",
            None if r is None else r <= PGB_CPU_RATIO,
            f"median proxy CPU µs/txn over the {scenario} runs / PgBouncer's median, same run; "
            "heliosproxy's default configuration", _noisy(data, scenario, h, pb)))
    hp, pp, dp = (lat_agg(data, "select_simple", s, "p99") for s in (h, pb, d))
    r = ratio(hp, pp)
    out.append(TargetResult(
        "p99_sat", *TARGETS[7][1:],
        "–" if hp is None else f"{fmt_ratio(r)} ({fmt_agg(hp, 3)} ms)" if r is not None
        else f"{fmt_agg(hp, 3)} ms",
        f"{fmt_agg(pp, 3)} ms" if pp else "–", f"{fmt_agg(dp, 3)} ms" if dp else "–",
        None if r is None else r <= 1.0,
        "median over the select_simple runs of each run's p99 (pgbench's sampled per-transaction "
        "log) / PgBouncer's median, same run; heliosproxy's default configuration",
        _noisy(data, "select_simple", h, pb)))
    return out


def _huge_errors(r: dict) -> int:
    n = (r.get("opened") or {}).get("errors", 0) + (r.get("check") or {}).get("errors", 0)
    n += (r.get("status_after_pgbench") or {}).get("lost", 0)
    if r.get("pgbench") and not r["pgbench"].get("ok"):
        n += 1
    if not r.get("ok") and n == 0:
        n = len(r.get("errors") or []) or 1
    return n


def _huge_cell(recs: list[dict]) -> str:
    if not recs:
        return "not run"
    r = recs[0]
    opened = (r.get("opened") or {}).get("ok", 0)
    mem = r.get("rss_with_idle")
    return (f"{_huge_errors(r)} errors, {opened:,}/{r.get('clients', 0):,} open"
            + (f", RSS {fmt_bytes(mem)}" if mem else ""))


def _verdict(t: TargetResult) -> str:
    v = {True: "**met**", False: "**missed**", None: "not measured"}[t.met]
    return v + " (noisy runs)" if t.noisy and t.met is not None else v


def targets_table(data: dict) -> list[str]:
    lines = ["| target | goal | heliosproxy | met? | PgBouncer (this run) | direct | "
             "baseline (issue 8 / 18) | how |",
             "|---|---|---|---|---|---|---|---|"]
    for t in evaluate_targets(data):
        lines.append(f"| {t.name} | {t.goal} | {t.helios} | {_verdict(t)} | {t.pgbouncer} | "
                     f"{t.direct} | {t.baseline} | {t.note} |")
    return lines


def systems_in(data: dict) -> list[str]:
    present = {r["system"] for r in data["runs"]}
    present |= {r["system"] for k in ("idle", "idle_huge", "noisy_neighbour")
                for r in data["extra"].get(k, [])}
    return [s for s in SYSTEM_ORDER if s in present]


def label(data: dict, system: str) -> str:
    return data["extra"].get("systems", {}).get(system, system)


def scenario_table(data: dict, scenario: str) -> list[str]:
    _prepare(data)
    systems = [s for s in systems_in(data) if runs_of(data, scenario, s)]
    if not systems:
        return []
    d_tps = field_agg(data, scenario, "direct", "tps")
    p_tps = field_agg(data, scenario, "pgbouncer", "tps")
    lines = ["| system | tps median (min–max) | × direct | × PgBouncer | latency avg ms | "
             "p99 ms | proxy CPU µs/txn | unattributed CPU µs/txn | noisy runs | errors |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in systems:
        rs = runs_of(data, scenario, s)
        tps = field_agg(data, scenario, s, "tps")
        cpu = field_agg(data, scenario, s, proxy_cost_key(s)) if s != "direct" else None
        un = field_agg(data, scenario, s, "unattributed_us_per_txn")
        lines.append(
            f"| {label(data, s)} | {fmt_agg(tps)} | "
            f"{fmt_ratio(ratio(tps, d_tps)) if s != 'direct' else '1.00×'} | "
            f"{fmt_ratio(ratio(tps, p_tps)) if s != 'pgbouncer' else '1.00×'} | "
            f"{fmt_agg(field_agg(data, scenario, s, 'latency_avg_ms'), 3)} | "
            f"{fmt_agg(lat_agg(data, scenario, s, 'p99'), 3)} | "
            f"{fmt_agg(cpu, 1) if s != 'direct' else '–'} | {fmt_agg(un, 1)} | "
            f"{sum(1 for r in rs if r.get('noisy'))}/{len(rs)} | "
            f"{sum(1 for r in rs if not r.get('ok'))} |")
    na = data["extra"].get("not_applicable", {}).get(scenario, {})
    for s, why in na.items():
        lines.append(f"| {label(data, s)} | not run: {why} | | | | | | | | |")
    return lines


def workers_table(data: dict) -> list[str]:
    """heliosproxy's default worker setting against fixed counts, beside PgBouncer (issue 18)."""
    systems = [s for s in WORKER_SYSTEMS + ["pgbouncer"]
               if runs_of(data, "select_simple", s) or runs_of(data, "rate_10k", s)]
    if not any(s != "helios" and s != "pgbouncer" for s in systems):
        return []
    d_tps = field_agg(data, "select_simple", "direct", "tps")
    cpu = {sc: field_agg(data, sc, "pgbouncer", "proxy_us_per_txn")
           for sc in ("select_simple", "rate_10k")}
    lines = ["| system | CPU µs/txn at saturation | × PgBouncer | CPU µs/txn at 10k tps | "
             "× PgBouncer | tps at saturation | × direct | p99 ms at saturation |",
             "|---|---|---|---|---|---|---|---|"]
    for s in systems:
        sat = field_agg(data, "select_simple", s, "proxy_us_per_txn")
        fix = field_agg(data, "rate_10k", s, "proxy_us_per_txn")
        tps = field_agg(data, "select_simple", s, "tps")
        lines.append(
            f"| {label(data, s)} | {fmt_agg(sat, 1)} | "
            f"{fmt_ratio(ratio(sat, cpu['select_simple']))} | {fmt_agg(fix, 1)} | "
            f"{fmt_ratio(ratio(fix, cpu['rate_10k']))} | {fmt_agg(tps)} | "
            f"{fmt_ratio(ratio(tps, d_tps))} | "
            f"{fmt_agg(lat_agg(data, 'select_simple', s, 'p99'), 3)} |")
    return lines


def idle_table(data: dict) -> list[str]:
    recs = data["extra"].get("idle", [])
    if not recs:
        return []
    lines = ["| system | idle clients | B per idle client (RSS) | Pss B per client | "
             "RSS before → with clients | tps beside them | "
             "SELECT 1 on every idle client (all reps) | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for s in systems_in(data):
        rs = [r for r in recs if r["system"] == s]
        if not rs:
            continue
        per = agg(r.get("bytes_per_client") for r in rs)
        tps = agg((r.get("pgbench") or {}).get("tps") for r in rs)
        errs = sum(len(r.get("errors") or []) for r in rs)
        checks = [r.get("check") for r in rs if r.get("check")]
        check = (f"{sum(c['ok'] for c in checks):,} ok, {sum(c['errors'] for c in checks)} "
                 "failed" if checks else "–")
        if s == "direct":
            rss = agg(r.get("rss_bytes_per_client") for r in rs)
            lines.append(f"| {label(data, s)} (per backend process; **not comparable**) | "
                         f"{rs[0]['clients']} | {fmt_bytes(rss.median) if rss else '–'} Rss | "
                         f"{fmt_bytes(per.median) if per else '–'} Pss | – | {fmt_agg(tps)} | "
                         f"{check} | {errs} |")
            continue
        pss = agg(r.get("pss_bytes_per_client") for r in rs)
        r0 = rs[len(rs) // 2]
        lines.append(f"| {label(data, s)} | {rs[0]['clients']:,} | {fmt_agg(per)} | "
                     f"{fmt_agg(pss)} | {fmt_bytes(r0.get('rss_before'))} → "
                     f"{fmt_bytes(r0.get('rss_with_idle'))} | {fmt_agg(tps)} | {check} | "
                     f"{errs} |")
    return lines


def huge_table(data: dict) -> list[str]:
    recs = data["extra"].get("idle_huge", [])
    if not recs:
        return []
    lines = ["| system | opened | time to open | RSS before → with clients | B per client | "
             "tps beside them | SELECT 1 on every client | lost | errors |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        op = r.get("opened") or {}
        ck = r.get("check") or {}
        st = r.get("status_after_pgbench") or {}
        lines.append(
            f"| {label(data, r['system'])} | {op.get('ok', 0):,}/{r.get('clients', 0):,} | "
            f"{fmt(op.get('seconds'), 1, ' s')} | {fmt_bytes(r.get('rss_before'))} → "
            f"{fmt_bytes(r.get('rss_with_idle'))} | {fmt(r.get('bytes_per_client'))} | "
            f"{fmt((r.get('pgbench') or {}).get('tps'))} | "
            f"{ck.get('ok', 0):,} ok, {ck.get('errors', '–')} failed in "
            f"{fmt(ck.get('seconds'), 1, ' s')} | {st.get('lost', '–')} | {_huge_errors(r)} |")
        for e in (r.get("errors") or [])[:3]:
            lines.append(f"|  | error: {e[:300]!s} | | | | | | | |".replace("\n", " "))
    return lines


def noisy_table(data: dict) -> list[str]:
    recs = data["extra"].get("noisy_neighbour", [])
    if not recs:
        return []
    lines = ["| system | B alone: tps, p99 ms | B beside A: tps, p99 ms | B tps beside/alone "
             "(goal ≥ 0.80) | B p99 beside/alone (goal ≤ 3) | goal | A tps | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for s in systems_in(data):
        rs = [r for r in recs if r["system"] == s]
        if not rs:
            continue
        at = agg(r["alone"]["tps"] for r in rs if r.get("alone"))
        ap = agg(r["alone"]["p99"] for r in rs if r.get("alone"))
        bt = agg(r["busy"]["tps"] for r in rs if r.get("busy"))
        bp = agg(r["busy"]["p99"] for r in rs if r.get("busy"))
        tr = agg(r.get("tps_ratio") for r in rs)
        pr = agg(r.get("p99_ratio") for r in rs)
        goal = None if tr is None or pr is None else (tr.median >= 0.8 and pr.median <= 3.0)
        lines.append(
            f"| {label(data, s)} | {fmt_agg(at)}, {fmt_agg(ap, 1)} | {fmt_agg(bt)}, "
            f"{fmt_agg(bp, 1)} | {fmt_agg(tr, 2)} | {fmt_agg(pr, 1)} | "
            f"{ {True: '**met**', False: '**missed**', None: '–'}[goal] } | "
            f"{fmt_agg(agg(r['a']['tps'] for r in rs if r.get('a')))} | "
            f"{sum(len(r.get('errors') or []) for r in rs)} |")
    return lines


def noise_lines(data: dict) -> list[str]:
    runs = data["runs"]
    if not runs:
        return []
    avg = agg(r.get("other_avg_cores") for r in runs)
    if avg is None:
        return ["- No load figures recorded."]
    mx = max((r.get("other_max_cores") or 0) for r in runs)
    noisy = sum(1 for r in runs if r.get("noisy"))
    not_quiet = sum(1 for r in runs if r.get("quiet_before") is False)
    plan = data["plan"]
    return [
        f"- Other load (whole machine minus PostgreSQL, the proxies, pgbench and the bench) "
        f"during the measured runs: median {avg.median:.2f} cores (range {avg.lo:.2f}–"
        f"{avg.hi:.2f}), highest 1-second sample {mx:.2f} cores.",
        f"- Runs whose other load went over {plan['interference_cores']} cores (kept after "
        f"{plan['retries']} repeats): {noisy} of {len(runs)}. Runs started without a quiet "
        f"machine (other load ≥ {plan['quiet_cores']} cores after waiting "
        f"{plan['max_quiet_wait_s']:.0f} s): {not_quiet}.",
        "- " + ("**The machine was busy: treat these numbers as indicative only.**"
                if noisy or not_quiet else "The machine was quiet for every run."),
    ]


def machine_lines(data: dict) -> list[str]:
    m = data["extra"].get("machine", {})
    if not m:
        return []
    v = m.get("versions", {})
    rows = [("CPU", f"{m.get('cpu')} × {m.get('cpus')} ({m.get('cpus_usable')} usable)"),
            ("memory", f"{m.get('memory_mb', 0):,} MB"), ("kernel", m.get("kernel")),
            ("Debian", m.get("os")), ("git", m.get("git")),
            *[(label(data, k), val) for k, val in v.items()],
            ("pgbench", m.get("pgbench")),
            ("load average at start", " ".join(f"{x:.2f}" for x in m.get("loadavg_start", []))),
            ("limits", f"somaxconn {m.get('somaxconn')}, ports {m.get('ip_local_port_range')}, "
                       f"nf_conntrack_max {m.get('nf_conntrack_max')}")]
    return ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]


def setup_lines(data: dict) -> list[str]:
    p = data["plan"]
    return [
        f"- PostgreSQL 15: fsync off, shared_buffers {p['shared_buffers']}, max_connections "
        f"{p['max_connections']}, `pgbench -i -s {p['scale']}`; TCP: heliosproxy connects to "
        "127.0.0.1, direct and PgBouncer to 127.0.0.2, which heliosproxy's same-host bypass "
        "(when attached) does not take.",
        f"- PgBouncer and heliosproxy: transaction mode, pool of {p['pool_size']} backends per "
        "(database, user), SCRAM-SHA-256 for clients with the secret fetched by auth_query, "
        "TCP to PostgreSQL, logging off (heliosproxy log_level error; PgBouncer "
        "log_connections/log_disconnections/log_stats 0). heliosproxy runs with its default "
        "worker setting (no `workers` in its config), and, where listed, with `workers = 1` "
        "and `workers = 2` with `worker_scaling = \"fixed\"` (select_simple and rate_10k "
        "only); PgBouncer is single-threaded.",
        f"- pgbench runs as the `bench` role (1-iteration SCRAM verifier), -c {p['clients']} "
        f"-j {p['jobs']}, {p['seconds']} s per run, {p['reps']} run(s) per system with the "
        "order of systems rotating; median (min–max).",
        "- proxy CPU µs/txn = (utime+stime of the proxy process from /proc/PID/stat, all "
        "threads) / transactions. Unattributed CPU = whole-machine busy time (/proc/stat) minus "
        "every process of the bench and PostgreSQL: kernel threads and other users' load.",
    ]


def render_summary(data: dict) -> str:
    stamp = data["extra"].get("stamp", "?")
    plan = data["plan"]["name"]
    errors = data.get("errors", [])
    out = [f"# HeliosProxy benchmark {stamp} ({plan})", ""]
    out.append(f"**{len(errors)} error(s).**" if errors else "No run errored.")
    out += ["", "## Targets (issues 8 and 18)", ""] + targets_table(data)
    out += ["", "Ratios and medians are over the runs listed below. A target is **met** when "
            "heliosproxy's median (default configuration) satisfies the goal; a ratio to "
            "PgBouncer is a ratio of the two medians of this run. \"(noisy runs)\": some run "
            "behind the figure saw other load over the interference limit even after its "
            "repeats; re-run on a quiet machine before quoting it.", ""]
    out += ["## Noise", ""] + noise_lines(data)
    out += ["", "## Machine and versions", ""] + machine_lines(data)
    out += ["", "## Set-up", ""] + setup_lines(data)
    wt = workers_table(data)
    if wt:
        out += ["", "## Workers: the default against fixed counts (issue 18)", "",
                "Medians over the select_simple (saturation) and rate_10k (10k tps) runs; "
                "ratios are of medians, against PgBouncer and direct in this run.", ""] + wt
    for sc, title in SCENARIO_TITLES.items():
        t = scenario_table(data, sc)
        if t:
            out += ["", f"## {sc}: {title}", ""] + t
    it = idle_table(data)
    if it:
        out += ["", "## Idle clients", "",
                "Proxies: (RSS with N idle, logged-in clients − RSS before) / N, each proxy "
                "restarted and warmed up with a short pgbench before. Then pgbench -S c16 runs "
                "beside the idle clients, and every idle client runs `SELECT 1` once. "
                "PostgreSQL: summed Pss (and Rss) of the backend processes of "
                "the idle connections / their number; PostgreSQL cannot hold 10,000 "
                "connections with max_connections 200, so this row is the price of one "
                "backend process, **not comparable** to a pooler's per-client figure.", ""] + it
    ht = huge_table(data)
    if ht:
        n = data["extra"]["idle_huge"][0].get("clients", 0)
        out += ["", f"## {n:,} idle clients (the 100k scenario)", "",
                f"Pool of {data['plan']['huge_pool_size']} backends; clients from several "
                "source addresses (127.0.0.2 and up) to stay clear of ephemeral-port "
                "exhaustion; opening and checking are each bounded in time.", ""] + ht
    nt = noisy_table(data)
    if nt:
        out += ["", "## Noisy neighbour (issue 3)", "",
                "Tenant A (`free_a`) runs 200 clients of `SELECT pg_sleep(0.005)` flat out; "
                "tenant B (`premium_b`) runs 10. heliosproxy: A's tier shares a pool of 8, B has "
                "a dedicated pool of 10 (weights 1 and 4). PgBouncer has no tenants: one pool of "
                "18 for both. B runs alone, then beside A (A started 3 s earlier). Medians over "
                "the repetitions.", ""] + nt
    skipped = data["extra"].get("skipped", {})
    limits = data["extra"].get("limits", {})
    if skipped or limits:
        out += ["", "## Skipped or reduced", ""]
        out += [f"- {k}: skipped, {v}" for k, v in skipped.items()]
        out += [f"- {k}: {v}" for k, v in limits.items()]
    plots = data["extra"].get("plots", [])
    if plots:
        out += ["", "## Plots", ""] + [f"![{p}](plots/{p})" for p in plots]
    if errors:
        out += ["", "## Errors", ""] + [f"```\n{e[:3000]}\n```" for e in errors]
    out += ["", "Raw output: `raw/` (pgbench output of every run), `results.json` (every "
            "number above), `bench.log`.", ""]
    return "\n".join(out)
