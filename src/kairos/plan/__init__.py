"""Planning: the fluid throughput bound and the configuration planners."""

from kairos.plan.fluid import FluidBound, fluid_bound

__all__ = ["FluidBound", "fluid_bound"]
