"""Workloads: query-size mixes and arrival processes (seeded, reproducible)."""

from kairos.workload.arrivals import (
    RateSchedule,
    load_trace,
    parse_schedule,
    poisson_unit_times,
)
from kairos.workload.sizes import SIZE_MIXES, SizeMix, parse_size_mix
from kairos.workload.workload import Workload, make_workload

__all__ = [
    "SizeMix",
    "parse_size_mix",
    "SIZE_MIXES",
    "poisson_unit_times",
    "load_trace",
    "RateSchedule",
    "parse_schedule",
    "Workload",
    "make_workload",
]
