"""Elastic operation: follow a changing load at the lowest cost.

:mod:`kairos.elastic.rates` reads load traces (requests per minute or second);
:mod:`kairos.elastic.billing` prices instance lifetimes as clouds bill them;
:mod:`kairos.elastic.controller` turns observed arrivals into add/drain actions on a
heterogeneous pool, planning each target pool with an injected planner. The pool side
of a resize (drain, no query lost) is :class:`kairos.dispatch.Dispatcher`'s.
"""

from kairos.elastic.billing import BillingRule, instance_cost
from kairos.elastic.controller import Action, Controller, ControllerSettings
from kairos.elastic.rates import RateTrace, load_rates

__all__ = ["Action", "BillingRule", "Controller", "ControllerSettings", "RateTrace", "instance_cost", "load_rates"]
