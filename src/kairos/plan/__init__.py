"""Planning: the fluid and window throughput bounds and the configuration planners."""

from kairos.plan.fluid import FluidBound, fluid_bound
from kairos.plan.window import window_bound

__all__ = ["FluidBound", "fluid_bound", "window_bound"]
