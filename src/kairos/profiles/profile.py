"""One model's latency profile: service-time distribution per (instance type, query size).

A profile keeps, for every instance type and measured query size ("batch"), the
trimmed mean service time (what a dispatcher estimates with) and a grid of
quantiles of the measured repetitions (what the simulator samples actual service
times from, by inverse-CDF interpolation). A query size between measured sizes
uses the next measured size up; a size beyond the largest measured one is an
error (we never extrapolate silently).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kairos.errors import KairosInputError

# Quantile levels stored per (type, batch). Dense in the tail, where QoS lives.
QUANTILE_LEVELS = np.array(
    [0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 1.0]
)


@dataclass(frozen=True)
class Profile:
    """Service times of one model on several instance types.

    Attributes:
        model: model name.
        types: instance type names, in a fixed order (index = type id).
        batches: measured query sizes, ascending (index = bucket id).
        mean_ms: [types, batches] estimated (trimmed mean) service time, ms.
        levels: quantile levels of ``quantiles_ms``' last axis.
        quantiles_ms: [types, batches, levels] service-time quantiles, ms.
    """

    model: str
    types: tuple[str, ...]
    batches: np.ndarray
    mean_ms: np.ndarray
    levels: np.ndarray
    quantiles_ms: np.ndarray
    _type_index: dict[str, int] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_type_index", {t: i for i, t in enumerate(self.types)})

    # ------------------------------------------------------------------ lookup
    def type_index(self, name: str) -> int:
        try:
            return self._type_index[name]
        except KeyError:
            raise KairosInputError(
                f"instance type {name!r} is not in the profile of model {self.model!r}; "
                f"known types: {', '.join(self.types)}"
            ) from None

    @property
    def max_batch(self) -> int:
        return int(self.batches[-1])

    def bucket_of(self, sizes) -> np.ndarray:
        """Bucket index (measured size at or above) for each query size."""
        sizes = np.asarray(sizes)
        if sizes.size and (sizes.max() > self.batches[-1]):
            raise KairosInputError(
                f"query size {int(sizes.max())} is beyond the largest measured size "
                f"{self.max_batch} of model {self.model!r}; use a workload whose sizes are "
                f"at most {self.max_batch} or a profile that measures larger sizes"
            )
        if sizes.size and sizes.min() < 1:
            raise KairosInputError(f"query sizes must be >= 1 (got {int(sizes.min())})")
        return np.searchsorted(self.batches, sizes, side="left").astype(np.int64)

    def quantile_ms(self, q: float) -> np.ndarray:
        """[types, batches] service-time quantile q (0..1), interpolated on the stored grid."""
        lv = self.levels
        k = int(np.clip(np.searchsorted(lv, q, side="right") - 1, 0, len(lv) - 2))
        w = (q - lv[k]) / (lv[k + 1] - lv[k])
        return self.quantiles_ms[:, :, k] * (1 - w) + self.quantiles_ms[:, :, k + 1] * w

    def sample_service_ms(self, buckets: np.ndarray, type_ids, rng: np.random.Generator) -> np.ndarray:
        """Actual service times [len(buckets), len(type_ids)] drawn by inverse-CDF sampling.

        One uniform draw per (query, type): every policy sees the same actual
        service time for the same query on the same type (common random numbers).
        """
        type_ids = np.asarray(type_ids, dtype=np.int64)
        n = len(buckets)
        u = rng.random((n, len(type_ids)))
        lv = self.levels
        k = np.clip(np.searchsorted(lv, u, side="right") - 1, 0, len(lv) - 2)
        w = (u - lv[k]) / (lv[k + 1] - lv[k])
        qv = self.quantiles_ms[type_ids[None, :], buckets[:, None]]  # [n, T, L]
        lo = np.take_along_axis(qv, k[:, :, None], axis=2)[:, :, 0]
        hi = np.take_along_axis(qv, (k + 1)[:, :, None], axis=2)[:, :, 0]
        return lo * (1 - w) + hi * w

    def restrict(self, types) -> Profile:
        """The same profile limited to the given instance types (in that order)."""
        idx = [self.type_index(t) for t in types]
        return Profile(
            model=self.model,
            types=tuple(types),
            batches=self.batches,
            mean_ms=self.mean_ms[idx],
            levels=self.levels,
            quantiles_ms=self.quantiles_ms[idx],
        )

    # ------------------------------------------------------------ construction
    @classmethod
    def from_samples(cls, model: str, samples: dict[tuple[str, int], np.ndarray]) -> Profile:
        """Build from raw repetitions {(type, batch): array of service times in ms}.

        Every type must be measured at every batch size. The estimate is the mean
        after dropping the single largest repetition (as the published Kairos code
        did, to discard warm-up outliers) when there are at least 3 repetitions.
        """
        types = sorted({t for t, _ in samples})
        batches = np.array(sorted({b for _, b in samples}), dtype=np.int64)
        missing = [(t, int(b)) for t in types for b in batches if (t, int(b)) not in samples]
        if missing:
            t, b = missing[0]
            raise KairosInputError(
                f"profile of model {model!r} has no measurement for instance {t!r} at batch {b} "
                f"({len(missing)} (instance, batch) pairs missing); every instance type needs "
                f"every batch size"
            )
        mean = np.empty((len(types), len(batches)))
        quant = np.empty((len(types), len(batches), len(QUANTILE_LEVELS)))
        for i, t in enumerate(types):
            for k, b in enumerate(batches):
                x = np.sort(np.asarray(samples[(t, int(b))], dtype=float))
                if not np.all(np.isfinite(x)) or x.size == 0 or x[0] < 0:
                    raise KairosInputError(
                        f"profile of model {model!r}: instance {t!r} batch {int(b)} has a "
                        f"negative, empty or non-numeric latency"
                    )
                mean[i, k] = x[:-1].mean() if x.size >= 3 else x.mean()
                quant[i, k] = np.quantile(x, QUANTILE_LEVELS)
        return cls(model, tuple(types), batches, mean, QUANTILE_LEVELS.copy(), quant)
