"""PNG plots with gnuplot (Debian's gnuplot-nox): tps per system and scenario, proxy CPU µs per
transaction, latency CDFs, memory per idle client. Each plot keeps its .dat and .gp beside the
PNG so it can be redrawn or restyled."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .report import SCENARIO_TITLES, field_agg, idle_recs, label, proxy_cost_key, systems_in
from .stats import agg

COLORS = {"direct": "#4d4d4d", "pgbouncer": "#1f77b4", "helios": "#d62728",
          "helios-w1": "#e377c2", "helios-w2": "#9467bd", "helios-kernel": "#ff7f0e"}
HEAD = 'set terminal pngcairo size 1000,560 font "sans,10" noenhanced\nset output "{png}"\n'


class PlotError(RuntimeError):
    pass


def _gnuplot(d: Path, name: str, script: str) -> str:
    gp = d / f"{name}.gp"
    gp.write_text(HEAD.format(png=f"{name}.png") + script)
    exe = shutil.which("gnuplot")
    if exe is None:
        raise PlotError("gnuplot not found (apt-get install gnuplot-nox; scripts/setup does)")
    cp = subprocess.run([exe, gp.name], cwd=d, capture_output=True, text=True, timeout=60)
    if cp.returncode != 0 or not (d / f"{name}.png").exists():
        raise PlotError(f"gnuplot {gp}: {cp.stderr[-1500:]}")
    return f"{name}.png"


def _q(s: str) -> str:
    return '"' + s.replace('"', "'") + '"'


def _bars(d: Path, name: str, title: str, ylabel: str, rows: list[str],
          systems: list[str], value, data: dict, hline: tuple[float, str] | None = None) -> str:
    """Clustered bars: one cluster per row (scenario), one bar per system, median with min-max
    error bars."""
    lines = ["# row " + " ".join(f"{s}_med {s}_lo {s}_hi" for s in systems)]
    for row in rows:
        vals = []
        for s in systems:
            a = value(row, s)
            vals += ["-", "-", "-"] if a is None else [f"{a.median:.4g}", f"{a.lo:.4g}",
                                                       f"{a.hi:.4g}"]
        lines.append(_q(row) + " " + " ".join(vals))
    (d / f"{name}.dat").write_text("\n".join(lines) + "\n")
    n = len(systems)
    width = 0.8 / n
    plots = []
    for i, s in enumerate(systems):
        off = -0.4 + width * (i + 0.5)
        c = 2 + 3 * i
        plots.append(f'"{name}.dat" using ($0+{off:.3f}):{c}:({width * 0.9:.3f}) with boxes '
                     f'fs solid 0.85 lc rgb "{COLORS.get(s, "#888888")}" '
                     f'title {_q(label(data, s))}')
        plots.append(f'"{name}.dat" using ($0+{off:.3f}):{c}:{c + 1}:{c + 2} with yerrorbars '
                     'lc rgb "black" pt 0 notitle')
    if hline:
        plots.append(f'{hline[0]} with lines dt 2 lw 2 lc rgb "#2ca02c" title {_q(hline[1])}')
    xt = ", ".join(f"{_q(r)} {i}" for i, r in enumerate(rows))
    script = (f"set title {_q(title)}\nset ylabel {_q(ylabel)}\nset datafile missing '-'\n"
              f"set style fill solid\nset boxwidth {width:.3f}\nset yrange [0:*]\n"
              f"set xrange [-0.6:{len(rows) - 0.4}]\nset xtics ({xt})\nset grid ytics\n"
              "set key top right\n"
              "plot " + ", \\\n     ".join(plots) + "\n")
    return _gnuplot(d, name, script)


def _cdf(d: Path, scenario: str, data: dict) -> str | None:
    cdf = data["extra"].get("cdf", {}).get(scenario)
    if not cdf:
        return None
    name = f"latency_cdf_{scenario}"
    plots = []
    for s in systems_in(data):
        if s not in cdf or not cdf[s]["points"]:
            continue
        dat = f"{name}_{s}.dat"
        (d / dat).write_text("# latency_ms fraction\n" + "\n".join(
            f"{x:.4f} {y:.6f}" for x, y in cdf[s]["points"]) + "\n")
        su = cdf[s]["summary"]
        t = f"{label(data, s)} (p50 {su['p50']:.3f} ms, p99 {su['p99']:.3f} ms)"
        plots.append(f'"{dat}" using 1:($2*100) with lines lw 2 '
                     f'lc rgb "{COLORS.get(s, "#888888")}" title {_q(t)}')
    if not plots:
        return None
    title = f"Latency CDF: {SCENARIO_TITLES.get(scenario, scenario)} (all runs merged)"
    script = (f"set title {_q(title)}\nset xlabel 'latency (ms, log scale)'\n"
              "set ylabel 'transactions at or below (%)'\nset logscale x\nset yrange [0:100]\n"
              "set grid\nset key bottom right\nplot " + ", \\\n     ".join(plots) + "\n")
    return _gnuplot(d, name, script)


def _noisy(d: Path, system: str, data: dict) -> str | None:
    recs = [r for r in data["extra"].get("noisy_neighbour", []) if r["system"] == system
            and r.get("over_time")]
    if not recs:
        return None
    r = recs[len(recs) // 2]
    name = f"noisy_neighbour_{system}"
    plots = []
    for tenant, color, t in (("a", "#ff7f0e", "A (200 clients)"),
                             ("b", "#2ca02c", "B (10 clients)")):
        rows = r["over_time"][tenant]
        dat = f"{name}_{tenant}.dat"
        (d / dat).write_text("# t_s n p50_ms p99_ms\n" + "\n".join(
            f"{x['t']} {x['n']} {x['p50']:.3f} {x['p99']:.3f}" for x in rows) + "\n")
        plots.append(f'"{dat}" using 1:4 with lines lw 2 lc rgb "{color}" '
                     f'title {_q(t + " p99")}')
        plots.append(f'"{dat}" using 1:3 with lines lw 1 dt 2 lc rgb "{color}" '
                     f'title {_q(t + " p50")}')
    title = (f"Noisy neighbour through {label(data, system)}: latency over time "
             f"(rep {r['rep']}; B starts 3 s after A)")
    script = (f"set title {_q(title)}\nset xlabel 'seconds since A started'\n"
              "set ylabel 'latency per 0.5 s (ms, log scale)'\nset logscale y\nset grid\n"
              "set key top right\nplot " + ", \\\n     ".join(plots) + "\n")
    return _gnuplot(d, name, script)


def make_plots(out: Path, data: dict) -> list[str]:
    d = out / "plots"
    d.mkdir(exist_ok=True)
    made = []
    systems = systems_in(data)
    scen = [s for s in SCENARIO_TITLES if any(r["scenario"] == s for r in data["runs"])]
    if scen and systems:
        made.append(_bars(d, "tps", "Throughput per scenario (median, min–max)",
                          "transactions per second", scen, systems,
                          lambda sc, s: field_agg(data, sc, s, "tps"), data))
    proxies = [s for s in systems if s != "direct"]
    cpu_scen = [s for s in scen if s != "connect_storm"]  # a login each: another scale
    if cpu_scen and proxies:
        made.append(_bars(d, "cpu_per_txn", "Proxy CPU per transaction (utime+stime; "
                          "connect_storm is in the table: a login per transaction)",
                          "µs per transaction", cpu_scen, proxies,
                          lambda sc, s: field_agg(data, sc, s, proxy_cost_key(s)), data,
                          hline=(5.0, "target ≤ 5 µs")))
    for sc in ("rate_10k", "select_simple", "c1000"):
        p = _cdf(d, sc, data)
        if p:
            made.append(p)
    for s in proxies:
        p = _noisy(d, s, data)
        if p:
            made.append(p)
    idle_sys = [s for s in proxies if idle_recs(data, "idle", s)]
    if idle_sys:
        n = idle_recs(data, "idle", idle_sys[0])[0]["clients"]
        made.append(_bars(d, "idle_memory", f"Proxy memory per idle client ({n:,} clients)",
                          "bytes per client (RSS)", [f"{n:,} idle clients"], idle_sys,
                          lambda _r, s: agg(r.get("bytes_per_client")
                                            for r in idle_recs(data, "idle", s)), data,
                          hline=(600.0, "target ≤ 600 B")))
    return made
