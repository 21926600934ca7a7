"""Arrival processes, in milliseconds from t=0.

- Poisson (exponential gaps): generated at unit rate (1 query/s) and scaled, so one
  seed gives the same arrival pattern at every rate (common random numbers).
- A trace file: one timestamp (seconds) per line.
- A piecewise rate schedule (load changes): steps, or linear ramps between points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kairos.errors import KairosInputError


def poisson_unit_times(n: int, rng: np.random.Generator) -> np.ndarray:
    """Arrival times (ms) of n queries of a Poisson process of rate 1 query/s."""
    return np.cumsum(rng.exponential(1000.0, n))


def load_trace(path) -> np.ndarray:
    """Arrival timestamps (seconds, one per line) -> ms from the first arrival, sorted."""
    path = Path(path)
    if not path.exists():
        raise KairosInputError(f"trace file not found: {path}")
    vals = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip().split(",")[0]
        if not line or line.startswith("#"):
            continue
        try:
            vals.append(float(line))
            if not math.isfinite(vals[-1]):
                raise ValueError
        except ValueError:
            raise KairosInputError(f"{path} line {i}: timestamp must be a number of seconds, got {line!r}") from None
    if not vals:
        raise KairosInputError(f"{path}: trace has no timestamps")
    t = np.sort(np.array(vals)) * 1000.0
    return t - t[0]


@dataclass(frozen=True)
class RateSchedule:
    """Arrival rate over time: (time_s, qps) points; steps or linear ramps between them."""

    times_s: tuple[float, ...]
    rates: tuple[float, ...]
    ramp: bool = False

    def rate_at(self, t_s: np.ndarray) -> np.ndarray:
        t_s = np.asarray(t_s, dtype=float)
        if self.ramp:
            return np.interp(t_s, self.times_s, self.rates)
        idx = np.searchsorted(self.times_s, t_s, side="right") - 1
        return np.asarray(self.rates)[np.clip(idx, 0, len(self.rates) - 1)]

    def arrivals_ms(self, duration_s: float, rng: np.random.Generator) -> np.ndarray:
        """A non-homogeneous Poisson process over [0, duration_s] by time rescaling."""
        grid = np.unique(
            np.concatenate([np.linspace(0, duration_s, 20001), [t for t in self.times_s if t < duration_s]])
        )
        r = self.rate_at(grid)
        if self.ramp:
            seg = 0.5 * (r[1:] + r[:-1]) * np.diff(grid)
        else:
            seg = r[:-1] * np.diff(grid)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        total = cum[-1]
        e = np.cumsum(rng.exponential(1.0, int(total * 1.2) + 100))
        e = e[e < total]
        return np.interp(e, cum, grid) * 1000.0


def parse_schedule(spec: str, ramp: bool = False) -> RateSchedule:
    """``T:QPS,T:QPS,...`` (T in seconds, ascending, first at 0)."""
    pts = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        t, sep, r = part.partition(":")
        try:
            pts.append((float(t), float(r)))
        except ValueError:
            raise KairosInputError(f"--schedule entry {part!r} must be SECONDS:QPS, e.g. 0:100,30:200") from None
    if not pts:
        raise KairosInputError("--schedule is empty; give SECONDS:QPS points, e.g. 0:100,30:200")
    ts = [p[0] for p in pts]
    if ts[0] != 0 or any(b <= a for a, b in zip(ts, ts[1:])):
        raise KairosInputError("--schedule times must start at 0 and increase, e.g. 0:100,30:200,60:150")
    if any(p[1] < 0 for p in pts) or all(p[1] == 0 for p in pts):
        raise KairosInputError("--schedule rates must be >= 0 and not all zero")
    return RateSchedule(tuple(ts), tuple(p[1] for p in pts), ramp)
