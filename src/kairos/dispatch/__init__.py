"""Query dispatch: which instance serves which queued query, decided at run time.

One interface (:class:`~kairos.dispatch.base.Policy`) used unchanged by the
simulator and the serving gateway; one pool state machine
(:class:`~kairos.dispatch.pool.Pool`) that both drive.
"""

from kairos.dispatch.base import DispatchContext, Policy
from kairos.dispatch.pool import Pool
from kairos.dispatch.registry import POLICIES, make_policy

__all__ = ["DispatchContext", "Policy", "Pool", "POLICIES", "make_policy"]
