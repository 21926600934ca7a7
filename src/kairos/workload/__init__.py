"""Workloads: query-size mixes and arrival processes (seeded, reproducible)."""

from kairos.workload.sizes import SizeMix, parse_size_mix, SIZE_MIXES
from kairos.workload.arrivals import (
    poisson_unit_times,
    load_trace,
    RateSchedule,
    parse_schedule,
)
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
