"""Policy names -> constructors (the names the CLI, the simulator and the gateway accept)."""

from __future__ import annotations

from kairos.dispatch.baselines import (
    ClockworkPolicy,
    DeepRecSysPolicy,
    FCFSPolicy,
    LeastLoadedPolicy,
    PowerOfTwoPolicy,
)
from kairos.dispatch.base import Policy
from kairos.dispatch.kairos import KairosOnlinePolicy, KairosPaperPolicy, KairosPolicy
from kairos.errors import KairosInputError

POLICIES: dict[str, type[Policy]] = {
    "kairos": KairosPolicy,
    "kairos-online": KairosOnlinePolicy,
    "kairos-paper": KairosPaperPolicy,
    "fcfs": FCFSPolicy,
    "deeprecsys": DeepRecSysPolicy,
    "clockwork": ClockworkPolicy,
    "least-loaded": LeastLoadedPolicy,
    "p2c": PowerOfTwoPolicy,
}


def make_policy(name: str, **params) -> Policy:
    try:
        cls = POLICIES[name]
    except KeyError:
        raise KairosInputError(f"unknown --policy {name!r}; choose one of {', '.join(POLICIES)}") from None
    return cls(**params)
