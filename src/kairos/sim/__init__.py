"""Discrete-event simulation of a heterogeneous pool under a dispatch policy."""

from kairos.sim.engine import SimResult, simulate
from kairos.sim.search import MaxQpsResult, max_qps

__all__ = ["SimResult", "simulate", "MaxQpsResult", "max_qps"]
