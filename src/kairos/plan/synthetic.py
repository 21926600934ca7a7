"""Synthetic catalogues with many instance types, for planning at scale.

Each synthetic type derives from one of a base catalogue's types (GPU or CPU): its
service times are the base type's scaled by a random speed factor (with a random
fixed overhead per query), and its price the base price scaled by the speed factor
to a random power around 1 with noise, so that faster types cost more but not
exactly proportionally (as across real instance families).
"""

from __future__ import annotations

import numpy as np

from kairos.profiles.catalogue import Catalogue, builtin_catalogue
from kairos.profiles.profile import Profile


def synthetic_catalogue(n_types: int, seed: int = 0, base: Catalogue | None = None) -> Catalogue:
    """A catalogue with ``n_types`` types for every model of ``base`` (default: built-in)."""
    base = base or builtin_catalogue()
    rng = np.random.default_rng(seed)
    first = next(iter(base.profiles.values()))
    src = rng.integers(0, len(first.types), n_types)
    speed = np.exp(rng.normal(0.0, 0.35, n_types))  # > 1: faster than the source type
    overhead = rng.uniform(0.0, 0.05, n_types)  # share of the fastest query added as fixed overhead
    power = rng.uniform(0.7, 1.3, n_types)
    noise = np.exp(rng.normal(0.0, 0.1, n_types))
    names = tuple(f"syn{i:03d}.{first.types[s].split('.')[0]}" for i, s in enumerate(src))
    prices = {
        nm: round(float(base.price(first.types[s]) * speed[i] ** power[i] * noise[i]), 4)
        for i, (nm, s) in enumerate(zip(names, src))
    }
    profiles = {}
    for model, p in base.profiles.items():
        idx = [p.type_index(first.types[s]) for s in src]
        extra = overhead[:, None] * p.mean_ms[idx, :1]  # [T, 1]
        mean = p.mean_ms[idx] / speed[:, None] + extra
        quant = p.quantiles_ms[idx] / speed[:, None, None] + extra[:, :, None]
        profiles[model] = Profile(model, names, p.batches.copy(), mean, p.levels.copy(), quant)
    return Catalogue(f"synthetic-{n_types}-{seed}", profiles, prices)
