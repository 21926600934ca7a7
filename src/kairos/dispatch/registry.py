"""Policy names -> constructors (the names the CLI, the simulator and the gateway accept)."""

from __future__ import annotations

import hashlib
import inspect
import json

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


def policy_class(name: str) -> type[Policy]:
    try:
        return POLICIES[name]
    except KeyError:
        raise KairosInputError(f"unknown --policy {name!r}; choose one of {', '.join(POLICIES)}") from None


def make_policy(name: str, **params) -> Policy:
    return policy_class(name)(**params)


def policy_fingerprint(name: str, params: dict | None = None) -> str:
    """The name plus every setting the policy reports (``describe()``), e.g.
    ``kairos{"age_weight":3.0,...}``: what a cached result of that policy depends on beyond
    its code. A change of a policy's defaults changes its fingerprint, so results cached
    under the old defaults are not taken for the new ones."""
    d = make_policy(name, **(params or {})).describe()
    return name + (json.dumps(d, sort_keys=True, separators=(",", ":")) if d else "")


def dispatch_defaults() -> str:
    """A short digest of every registered policy's default fingerprint (for caches whose
    entries depend on several policies, e.g. a ``kairos reproduce`` cell)."""
    text = "|".join(policy_fingerprint(n) for n in sorted(POLICIES))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _value(text: str):
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def policy_option_names(name: str) -> list[str]:
    """The keyword options of policy ``name``'s constructor (its parents' too, where it passes **kw on)."""
    cls = policy_class(name)
    known: list[str] = []
    for klass in cls.__mro__:  # a constructor passing **kw on to its parent accepts the parent's too
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        ps = inspect.signature(init).parameters.values()
        known += [p.name for p in ps if p.name != "self" and p.name not in known
                  and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind == p.VAR_KEYWORD for p in ps):
            break
    return known


def parse_policy_options(name: str, items) -> dict:
    """``["risk_penalty=0.5", ...]`` -> keyword arguments of policy ``name``'s constructor,
    checked by building the policy once (KairosInputError naming the option otherwise)."""
    cls = policy_class(name)
    known = policy_option_names(name)
    params = {}
    for item in items or ():
        key, sep, val = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise KairosInputError(f"--policy-option {item!r} must look like KEY=VALUE, e.g. risk_penalty=0.5")
        if key not in known:
            raise KairosInputError(f"--policy-option {key!r} is not an option of policy {name!r}; "
                                   f"its options: {', '.join(known) or 'none'}")
        if key in params:
            raise KairosInputError(f"--policy-option {key!r} is given twice; give each option once")
        params[key] = _value(val)
    try:
        cls(**params)
    except (TypeError, ValueError) as exc:
        raise KairosInputError(f"--policy-option for {name!r}: {exc}") from None
    return params
