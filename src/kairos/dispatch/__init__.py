"""Query dispatch: which instance serves which queued query, decided at run time.

One interface (:class:`~kairos.dispatch.base.Policy`) used unchanged by the
simulator and the serving gateway; one pool state machine
(:class:`~kairos.dispatch.pool.Pool`); one decision step
(:class:`~kairos.dispatch.dispatcher.Dispatcher`) that both drive.
"""

from kairos.dispatch.base import DispatchContext, Policy
from kairos.dispatch.dispatcher import Dispatcher
from kairos.dispatch.pool import ArrayQueries, DictQueries, Pool, QueryTable
from kairos.dispatch.registry import POLICIES, make_policy

__all__ = [
    "ArrayQueries",
    "DictQueries",
    "DispatchContext",
    "Dispatcher",
    "Policy",
    "Pool",
    "POLICIES",
    "QueryTable",
    "make_policy",
]
