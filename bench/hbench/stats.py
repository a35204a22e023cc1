"""Aggregation of repeated runs: median (min-max), ratios, and number formatting."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Optional


@dataclass(frozen=True)
class Agg:
    median: float
    lo: float
    hi: float
    n: int

    def fmt(self, digits: int = 0, thousands: bool = True) -> str:
        f = (lambda v: f"{v:,.{digits}f}") if thousands else (lambda v: f"{v:.{digits}f}")
        if self.n == 1 or self.lo == self.hi:
            return f(self.median)
        return f"{f(self.median)} ({f(self.lo)}–{f(self.hi)})"


def agg(values: Iterable[Optional[float]]) -> Optional[Agg]:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return None
    return Agg(statistics.median(vals), min(vals), max(vals), len(vals))


def ratio(a: Optional[Agg], b: Optional[Agg]) -> Optional[float]:
    if a is None or b is None or b.median == 0:
        return None
    return a.median / b.median


def fmt_ratio(r: Optional[float]) -> str:
    return "–" if r is None else f"{r:.2f}×"


def fmt(v: Optional[float], digits: int = 0, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:,.{digits}f}{unit}"


def fmt_agg(a: Optional[Agg], digits: int = 0) -> str:
    return "–" if a is None else a.fmt(digits)


def fmt_bytes(v: Optional[float]) -> str:
    if v is None:
        return "–"
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(v) >= div:
            return f"{v / div:,.1f} {unit}"
    return f"{v:,.0f} B"
