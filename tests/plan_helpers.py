"""Tiny synthetic catalogues for the planner tests."""

from __future__ import annotations

import numpy as np

from kairos.profiles.catalogue import Catalogue
from kairos.profiles.profile import Profile
from kairos.workload.sizes import SizeMix

BATCHES = (10, 20, 40, 80)


def tiny_catalogue(
    speeds=(1.0, 0.45, 0.3), prices=(1.0, 0.35, 0.2), base_ms=(3.0, 6.0, 11.0, 21.0), jitter=0.05, seed=0, model="toy"
) -> Catalogue:
    """Types t0.. whose service time at size b is base_ms[b] / speed, with a little spread."""
    rng = np.random.default_rng(seed)
    samples = {}
    for i, sp in enumerate(speeds):
        for b, ms in zip(BATCHES, base_ms):
            samples[(f"t{i}", b)] = ms / sp * (1.0 + jitter * rng.standard_normal(20)).clip(0.8, 1.2)
    prof = Profile.from_samples(model, samples)
    return Catalogue("tiny", {model: prof}, {f"t{i}": float(p) for i, p in enumerate(prices)})


def tiny_mix(probs=(0.4, 0.3, 0.2, 0.1)) -> SizeMix:
    p = np.asarray(probs, dtype=float) / np.sum(probs)

    def draw(n, rng):
        return rng.choice(np.array(BATCHES), size=n, p=p)

    return SizeMix("tiny", draw)
