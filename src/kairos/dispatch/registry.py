"""The dispatch policies: one :class:`PolicySpec` per policy, registered in :data:`POLICIES`.

Everything that lists policies derives from this registry: the CLI's ``--policy``
choices, the simulator's and the gateway's :func:`make_policy`, and which of
``kairos reproduce``'s comparisons run a policy (:attr:`PolicySpec.comparisons`). A new
policy is one module (a :class:`~kairos.dispatch.base.Policy` subclass) plus one
``PolicySpec(...)`` line below.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass

from kairos.dispatch.base import Policy
from kairos.dispatch.baselines import (
    ClockworkPolicy,
    DeepRecSysPolicy,
    FCFSPolicy,
    LeastLoadedPolicy,
    PowerOfTwoPolicy,
)
from kairos.dispatch.kairos import KairosOnlinePolicy, KairosPaperPolicy, KairosPolicy
from kairos.errors import KairosInputError

#: ``kairos reproduce``'s comparisons of dispatch policies (what :attr:`PolicySpec.comparisons` may name):
#: the dispatch ablation on the paper's pools, the load change on the planned pools, the
#: noisy-estimate sweep of a full run and of a ``--quick`` run
COMPARISONS = ("dispatch", "load", "noise", "quick-noise")


@dataclass(frozen=True)
class PolicySpec:
    """One dispatch policy: its name (``--policy NAME``), its class, how reports label it and
    which of ``kairos reproduce``'s :data:`COMPARISONS` run it."""

    name: str
    cls: type[Policy]
    label: str = ""  # how tables and figures name it (empty: the name)
    comparisons: tuple[str, ...] = ("dispatch", "load")

    def __post_init__(self):
        if self.cls.name != self.name:
            raise ValueError(
                f"policy {self.name!r}: its class {self.cls.__name__} has name = {self.cls.name!r}; "
                f"set the class attribute name = {self.name!r}"
            )
        unknown = [c for c in self.comparisons if c not in COMPARISONS]
        if unknown:
            raise ValueError(
                f"policy {self.name!r}: unknown comparisons {unknown}; choose from {', '.join(COMPARISONS)}"
            )
        if not self.label:
            object.__setattr__(self, "label", self.name)


POLICIES: dict[str, PolicySpec] = {}


def register_policy(spec: PolicySpec) -> PolicySpec:
    """Add ``spec`` to :data:`POLICIES` (its name must be new)."""
    if spec.name in POLICIES:
        raise ValueError(f"a policy named {spec.name!r} is already registered")
    POLICIES[spec.name] = spec
    return spec


for _spec in (
    PolicySpec("kairos", KairosPolicy, comparisons=COMPARISONS),
    PolicySpec("kairos-online", KairosOnlinePolicy, comparisons=COMPARISONS),
    PolicySpec("kairos-paper", KairosPaperPolicy, comparisons=COMPARISONS),
    PolicySpec("fcfs", FCFSPolicy),
    PolicySpec("deeprecsys", DeepRecSysPolicy, comparisons=("dispatch", "load", "noise")),
    PolicySpec("clockwork", ClockworkPolicy, comparisons=COMPARISONS),
    PolicySpec("least-loaded", LeastLoadedPolicy),
    PolicySpec("p2c", PowerOfTwoPolicy),
):
    register_policy(_spec)


def policies_in(comparison: str) -> tuple[str, ...]:
    """The registered policies that ``comparison`` (one of :data:`COMPARISONS`) runs, in registration order."""
    if comparison not in COMPARISONS:
        raise ValueError(f"unknown comparison {comparison!r}; choose from {', '.join(COMPARISONS)}")
    return tuple(s.name for s in POLICIES.values() if comparison in s.comparisons)


def policy_label(name: str) -> str:
    """How tables and figures name policy ``name``."""
    return POLICIES[name].label


def policy_class(name: str) -> type[Policy]:
    try:
        return POLICIES[name].cls
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
    """A short digest of every registered policy's default fingerprint (``benchmarks/plan_quality.py``
    keys its finished cells on it). A cache whose entries use only some policies keys each
    entry on those policies' fingerprints instead, as ``kairos reproduce`` does."""
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
        known += [
            p.name
            for p in ps
            if p.name != "self" and p.name not in known and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
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
            raise KairosInputError(
                f"--policy-option {key!r} is not an option of policy {name!r}; "
                f"its options: {', '.join(known) or 'none'}"
            )
        if key in params:
            raise KairosInputError(f"--policy-option {key!r} is given twice; give each option once")
        params[key] = _value(val)
    try:
        cls(**params)
    except (TypeError, ValueError) as exc:
        raise KairosInputError(f"--policy-option for {name!r}: {exc}") from None
    return params
