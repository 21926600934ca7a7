"""Query-size mixes: how many samples each query carries.

Named mixes: ``deeprecsys`` (the Kairos paper's production-like mix, default),
``ribbon`` (the RIBBON paper's mix), ``fixed:N``; or a path to a text file with
one size per line (sampled uniformly with replacement).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kairos.errors import KairosInputError


def _round_up10(x: np.ndarray) -> np.ndarray:
    return (np.ceil(np.asarray(x) / 10.0) * 10).astype(np.int64)


def deeprecsys_sizes(n: int, rng: np.random.Generator) -> np.ndarray:
    """8% U[1,99], 22% U[200,599], 5% U[600,999], 65% lognormal(5.1, 0.2) kept in
    [100, 200] (else redrawn U[190,199]); rounded up to a multiple of 10."""
    u = rng.random(n)
    out = np.empty(n)
    a = u < 0.08
    b = (u >= 0.08) & (u < 0.30)
    c = (u >= 0.30) & (u < 0.35)
    d = u >= 0.35
    out[a] = rng.integers(1, 100, a.sum())
    out[b] = rng.integers(200, 600, b.sum())
    out[c] = rng.integers(600, 1000, c.sum())
    ln = rng.lognormal(5.1, 0.2, d.sum())
    bad = (ln < 100) | (ln > 200)
    ln[bad] = rng.integers(190, 200, bad.sum())
    out[d] = ln
    return _round_up10(out)


def ribbon_sizes(n: int, rng: np.random.Generator) -> np.ndarray:
    """2% U[1,99], 10% U[250,499], 88% lognormal(5.1, 0.2) redrawn U[400,499] above 500;
    rounded up to a multiple of 10."""
    u = rng.random(n)
    out = np.empty(n)
    a = u < 0.02
    b = (u >= 0.02) & (u < 0.12)
    d = u >= 0.12
    out[a] = rng.integers(1, 100, a.sum())
    out[b] = rng.integers(250, 500, b.sum())
    ln = rng.lognormal(5.1, 0.2, d.sum())
    bad = ln > 500
    ln[bad] = rng.integers(400, 500, bad.sum())
    out[d] = ln
    return np.maximum(_round_up10(out), 10)


@dataclass(frozen=True)
class SizeMix:
    """A named, seeded generator of query sizes."""

    name: str
    draw: Callable[[int, np.random.Generator], np.ndarray]

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        return self.draw(n, np.random.default_rng(seed))

    def bucket_probabilities(self, batches: np.ndarray, n: int = 200_000, seed: int = 12345) -> np.ndarray:
        """Probability of each measured-size bucket (sizes mapped to the next measured size up)."""
        sizes = self.sample(n, seed)
        if sizes.max() > batches[-1]:
            raise KairosInputError(
                f"workload {self.name!r} has sizes up to {int(sizes.max())}, beyond the largest "
                f"measured size {int(batches[-1])}"
            )
        idx = np.searchsorted(batches, sizes, side="left")
        return np.bincount(idx, minlength=len(batches)) / n


SIZE_MIXES = {
    "deeprecsys": SizeMix("deeprecsys", deeprecsys_sizes),
    "ribbon": SizeMix("ribbon", ribbon_sizes),
}


def parse_size_mix(spec: str) -> SizeMix:
    """``deeprecsys`` | ``ribbon`` | ``fixed:N`` | path to a file of sizes (one per line)."""
    spec = (spec or "").strip()
    if spec in SIZE_MIXES:
        return SIZE_MIXES[spec]
    if not spec:
        raise KairosInputError(f"--workload is empty; give {', '.join(SIZE_MIXES)}, fixed:N or a file of sizes")
    if spec.startswith("fixed:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            raise KairosInputError(f"--workload {spec!r}: fixed:N needs an integer N, e.g. fixed:100") from None
        if n < 1:
            raise KairosInputError(f"--workload {spec!r}: the fixed size must be >= 1")

        def fixed(k: int, rng: np.random.Generator) -> np.ndarray:
            return np.full(k, n, dtype=np.int64)

        return SizeMix(spec, fixed)
    path = Path(spec)
    if not path.exists():
        raise KairosInputError(
            f"--workload {spec!r} is neither a known mix ({', '.join(SIZE_MIXES)}, fixed:N) nor an existing file"
        )
    vals = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            f = float(line)
            if not f.is_integer():
                raise ValueError
            v = int(f)
        except (ValueError, OverflowError):
            raise KairosInputError(f"{path} line {i}: query size must be a positive integer, got {line!r}") from None
        if v < 1:
            raise KairosInputError(f"{path} line {i}: query size must be >= 1, got {v}")
        vals.append(v)
    if not vals:
        raise KairosInputError(f"{path}: no query sizes in the file")
    arr = np.array(vals, dtype=np.int64)

    def from_file(k: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(arr, size=k, replace=True)

    return SizeMix(str(path), from_file)
