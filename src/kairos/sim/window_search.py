"""The window bound on max QPS: the highest rate at which no dispatcher is forced to break the max-QPS criterion.

:meth:`Experiment.window_bound` bounds how many queries of one workload *any* dispatcher
finishes within QoS at a rate (:mod:`kairos.plan.window`). A rate at which that bound
leaves more misses than the max-QPS criterion allows (:func:`kairos.sim.search.allowed_misses`)
is one that no dispatcher passes on this sample path. :func:`window_max_qps` searches the
highest rate at which the criterion could still hold (to 0.5%), up to the fluid bound:
both are upper bounds on max QPS, and where the LP allows the fluid rate the fluid bound
is the tighter one and is reported. ``benchmarks/window_bound.py`` is its command line.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kairos.plan.window import BLOCK_QUERIES, SLOTS_PER_QOS
from kairos.sim.experiment import Experiment
from kairos.sim.search import allowed_misses

REL_TOL = 1.005  # the search stops when the bracket's ends are within 0.5%


def window_probe(
    exp: Experiment, rate: float, block_queries: int = BLOCK_QUERIES, slots_per_qos: int = SLOTS_PER_QOS
) -> dict:
    """The window bound at one rate: queries at most within QoS, the misses it forces, whether
    the criterion's miss allowance could still hold, and the LP's solve time."""
    n = exp.workload.n
    t0 = time.perf_counter()
    within = exp.window_bound(rate, block_queries, slots_per_qos)
    return {
        "rate": rate,
        "within_qos_bound": within,
        "forced_misses": n - within,
        "could_pass": n - within <= allowed_misses(n),
        "lp_s": time.perf_counter() - t0,
    }


def window_max_qps(
    exp: Experiment,
    block_queries: int = BLOCK_QUERIES,
    slots_per_qos: int = SLOTS_PER_QOS,
    on_probe: Callable[[dict], None] | None = None,
) -> dict:
    """The highest rate (to 0.5%) at which the window bound lets the criterion hold, searched up to
    the fluid bound; ``on_probe`` sees each probe's :func:`window_probe` row as it is made.

    Returns ``window_bound_qps``, ``capped_at_fluid`` (the LP allows the fluid rate) and ``fluid_bound_qps``."""

    def passes(rate: float) -> bool:
        row = window_probe(exp, rate, block_queries, slots_per_qos)
        if on_probe is not None:
            on_probe(row)
        return row["could_pass"]

    fluid = exp.fluid_bound()
    lo, hi = 0.5 * fluid, fluid  # the fluid bound allows at most its rate (up to noise)
    while not passes(lo):
        hi, lo = lo, lo * 0.8
    capped = passes(hi)
    if capped:
        lo = hi
    while hi / lo > REL_TOL:
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if passes(mid) else (lo, mid)
    return {"window_bound_qps": lo, "capped_at_fluid": capped, "fluid_bound_qps": fluid}
