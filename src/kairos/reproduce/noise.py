"""Noisy latency estimates: what the dispatcher sees, while queries keep their true service times.

:func:`perturb_profile` multiplies the estimates (``mean_ms`` and the quantiles) of every
(instance type, size) by one factor drawn uniformly from ``[1 - x, 1 + x]``. Simulating
with the perturbed profile and a workload drawn from the true one (whose ``service_ms``
are the actual service times) gives a dispatcher that plans with wrong estimates.
"""

from __future__ import annotations

import numpy as np

from kairos.profiles.profile import Profile


def perturb_profile(profile: Profile, x: float, seed: int) -> Profile:
    if not 0 <= x < 1:
        raise ValueError(f"noise level must be in [0, 1), got {x}")
    rng = np.random.default_rng(seed)
    f = rng.uniform(1.0 - x, 1.0 + x, size=profile.mean_ms.shape)
    return Profile(
        profile.model,
        profile.types,
        profile.batches.copy(),
        profile.mean_ms * f,
        profile.levels.copy(),
        profile.quantiles_ms * f[:, :, None],
    )
