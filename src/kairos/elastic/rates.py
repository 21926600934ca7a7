"""Load traces as request counts per fixed step (a minute or a second)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kairos.errors import KairosInputError

_STEPS = {"minute": 60.0, "second": 1.0}


@dataclass(frozen=True)
class RateTrace:
    """Requests per step: ``counts[k]`` arrived in ``[k * step_s, (k + 1) * step_s)``."""

    step_s: float
    counts: np.ndarray

    @property
    def rates(self) -> np.ndarray:
        """Requests per second in each step."""
        return self.counts / self.step_s

    @property
    def duration_s(self) -> float:
        return len(self.counts) * self.step_s

    def scaled_to_peak(self, peak_qps: float) -> RateTrace:
        """The same shape, scaled so that its busiest step runs at ``peak_qps``."""
        if not (math.isfinite(peak_qps) and peak_qps > 0):
            raise KairosInputError(f"--peak-qps must be a finite number > 0, got {peak_qps}")
        top = float(self.rates.max())
        if top <= 0:
            raise KairosInputError("the rate file has no requests; nothing to scale to --peak-qps")
        return RateTrace(self.step_s, self.counts * (peak_qps / top))

    def compressed(self, step_s: float) -> RateTrace:
        """The same rates with each step lasting ``step_s`` seconds (fewer requests per step
        when it is shorter): the load of a long trace played in less time."""
        if not (math.isfinite(step_s) and step_s > 0):
            raise KairosInputError(f"--step-s must be a finite number > 0, got {step_s}")
        return RateTrace(float(step_s), self.rates * float(step_s))

    def slice(self, start_step: int, steps: int) -> RateTrace:
        return RateTrace(self.step_s, self.counts[start_step : start_step + steps].copy())

    def arrivals_s(self, seed: int = 0, time_scale: float = 1.0) -> np.ndarray:
        """Poisson arrival times (s): in each step, a Poisson number of arrivals around its
        count, spread uniformly. ``time_scale`` < 1 compresses time (a step lasts
        ``step_s * time_scale`` seconds, at the same number of requests)."""
        rng = np.random.default_rng(seed)
        n = rng.poisson(self.counts)
        step = self.step_s * time_scale
        starts = np.repeat(np.arange(len(self.counts)) * step, n)
        return np.sort(starts + rng.uniform(0.0, step, starts.size))


def load_rates(path: str | Path) -> RateTrace:
    """Read ``minute,requests`` or ``second,requests`` (a header line, then one row per
    step, steps 0, 1, 2, ... in order; counts >= 0)."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise KairosInputError(f"--rates {p}: cannot read it as a text file ({exc.__class__.__name__})") from None
    if not rows:
        raise KairosInputError(f"--rates {p}: empty; expected a header 'minute,requests' or 'second,requests'")
    head = [c.strip().lower() for c in rows[0]]
    if len(head) != 2 or head[0] not in _STEPS or head[1] != "requests":
        raise KairosInputError(
            f"--rates {p}: header must be 'minute,requests' or 'second,requests', got {','.join(rows[0])!r}"
        )
    counts = []
    for k, row in enumerate(rows[1:]):
        line = k + 2
        if len(row) != 2:
            raise KairosInputError(f"--rates {p} line {line}: expected 2 fields, got {len(row)}")
        try:
            step, c = int(row[0]), float(row[1])
        except ValueError:
            raise KairosInputError(
                f"--rates {p} line {line}: {head[0]} must be an integer and requests a number"
            ) from None
        if step != k:
            raise KairosInputError(f"--rates {p} line {line}: {head[0]} {step} out of order; expected {k}")
        if not (math.isfinite(c) and c >= 0):
            raise KairosInputError(f"--rates {p} line {line}: requests must be a finite number >= 0, got {row[1]!r}")
        counts.append(c)
    if not counts:
        raise KairosInputError(f"--rates {p}: no rows after the header")
    return RateTrace(_STEPS[head[0]], np.asarray(counts, dtype=float))


def replayed_part(
    trace: RateTrace, rates_path, peak_qps: float | None, start_minute: int, minutes: int | None
) -> RateTrace:
    """The part of a rate file to replay: scaled to ``peak_qps`` (the whole file), then
    sliced in minutes (``minutes`` None: to the end). One-line errors name the flags."""
    if peak_qps is not None:
        trace = trace.scaled_to_peak(peak_qps)
    per_minute = 60.0 / trace.step_s
    total_min = trace.duration_s / 60.0
    if start_minute >= total_min:
        raise KairosInputError(
            f"--start-minute {start_minute}: the rate file {rates_path} has {total_min:g} minutes; "
            f"give a smaller --start-minute"
        )
    if minutes is not None and start_minute + minutes > total_min:
        raise KairosInputError(
            f"--minutes {minutes} from --start-minute {start_minute} runs past the end of the rate "
            f"file {rates_path} ({total_min:g} minutes); give fewer --minutes"
        )
    start = int(round(start_minute * per_minute))
    steps = len(trace.counts) - start if minutes is None else int(round(minutes * per_minute))
    part = trace.slice(start, steps)
    if part.counts.sum() <= 0:
        raise KairosInputError(
            f"--rates {rates_path}: no requests in the minutes replayed; choose another --start-minute/--minutes"
        )
    return part
