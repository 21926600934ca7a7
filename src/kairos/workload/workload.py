"""A concrete workload: arrival times, sizes and each query's actual service time per type.

Actual service times are drawn once per (query, instance type) from the profile's
measured distribution, so that every dispatch policy and every arrival rate is
evaluated on the same queries (common random numbers); dispatchers only ever see
the profile's estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kairos.errors import KairosInputError, require_positive
from kairos.profiles.profile import Profile
from kairos.workload.arrivals import RateSchedule, poisson_unit_times
from kairos.workload.sizes import SizeMix


@dataclass
class Workload:
    """Queries of one run. ``arrivals_ms(rate)`` scales unit-rate arrivals to a rate.

    Attributes:
        sizes: [n] query sizes (samples per query).
        buckets: [n] index of the measured size serving each query (profile.batches).
        service_ms: [n, types] actual service time of each query on each profile type.
        unit_arrivals_ms: [n] arrival times at a mean rate of 1 query/s, or None when
            ``fixed_arrivals_ms`` is a trace or schedule replayed as it is.
    """

    sizes: np.ndarray
    buckets: np.ndarray
    service_ms: np.ndarray
    unit_arrivals_ms: np.ndarray | None
    fixed_arrivals_ms: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.sizes)

    def arrivals_ms(self, rate: float | None = None) -> np.ndarray:
        if rate is None:
            if self.fixed_arrivals_ms is None:
                raise KairosInputError("give an arrival rate (--qps) or a trace/schedule")
            return self.fixed_arrivals_ms
        require_positive("the arrival rate (queries/s)", rate)
        base = self.unit_arrivals_ms
        if base is None:  # a replayed trace: its times at a mean rate of 1 query/s, then scaled to the rate
            trace = self.fixed_arrivals_ms
            assert trace is not None, "a workload has unit-rate arrivals, fixed arrivals, or both"
            gaps = max(len(trace) - 1, 1)
            base = trace * (gaps * 1000.0 / max(float(trace[-1]), 1e-9))
        return base / rate

    def head(self, n: int) -> Workload:
        sl = slice(0, n)
        return Workload(
            self.sizes[sl],
            self.buckets[sl],
            self.service_ms[sl],
            None if self.unit_arrivals_ms is None else self.unit_arrivals_ms[sl],
            None if self.fixed_arrivals_ms is None else self.fixed_arrivals_ms[sl],
        )


def make_workload(
    profile: Profile,
    mix: SizeMix,
    n: int = 20_000,
    seed: int = 0,
    trace_ms: np.ndarray | None = None,
    schedule: RateSchedule | None = None,
    duration_s: float | None = None,
) -> Workload:
    """Draw n queries (Poisson arrivals by default; a trace or a schedule fixes their times)."""
    rng = np.random.default_rng(seed)
    fixed = None
    if schedule is not None:
        if duration_s is None or duration_s <= 0:
            raise KairosInputError("a rate schedule needs a positive --duration in seconds")
        fixed = schedule.arrivals_ms(duration_s, np.random.default_rng(seed + 1))
        n = len(fixed)
    elif trace_ms is not None:
        fixed = np.asarray(trace_ms, dtype=float)
        n = len(fixed)
    if n < 1:
        raise KairosInputError(f"--queries must be >= 1, got {n}")
    sizes = mix.draw(n, rng)
    buckets = profile.bucket_of(sizes)
    service = profile.sample_service_ms(buckets, np.arange(len(profile.types)), rng)
    unit = None if fixed is not None else poisson_unit_times(n, np.random.default_rng(seed + 7919))
    return Workload(sizes, buckets, service, unit, fixed)
