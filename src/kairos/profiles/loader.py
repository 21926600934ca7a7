"""Read latency profiles (CSV or CSV.gz) and price lists (CSV) supplied by the user.

Profile columns: ``model, instance, batch`` and either ``latency_ms`` or
``infer_ms`` + ``load_ms`` (service time = their sum); ``rep`` is optional and
ignored beyond counting repetitions. Price columns: ``instance, usd_per_hour``.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from kairos.errors import KairosInputError
from kairos.profiles.profile import Profile


def _open_text(path: Path):
    if not path.exists():
        raise KairosInputError(f"file not found: {path}")
    if path.is_dir():
        raise KairosInputError(f"expected a file, got a directory: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise KairosInputError(f"{path}: corrupt gzip file ({exc})") from None
    try:
        return io.StringIO(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise KairosInputError(f"{path}: not a UTF-8 text/CSV file") from None


def _number(value: str | None, path: Path, line: int, column: str) -> float:
    try:
        if value is None:  # a short row (csv.DictReader fills the missing fields with None)
            raise ValueError
        x = float(value)
    except ValueError:
        raise KairosInputError(f"{path} line {line}: column {column!r} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise KairosInputError(f"{path} line {line}: column {column!r} must be finite, got {value!r}")
    return x


def load_profiles(path) -> dict[str, Profile]:
    """Load every model's profile from a CSV/CSV.gz file. Returns {model: Profile}."""
    path = Path(path)
    reader = csv.DictReader(_open_text(path))
    cols = [c.strip() for c in (reader.fieldnames or [])]
    reader.fieldnames = cols
    need = {"model", "instance", "batch"}
    if not cols:
        raise KairosInputError(
            f"{path}: empty profile (no header); expected columns model, instance, batch, latency_ms"
        )
    if not need <= set(cols):
        raise KairosInputError(
            f"{path}: profile is missing column(s) {', '.join(sorted(need - set(cols)))}; "
            f"expected model, instance, batch and latency_ms (or infer_ms + load_ms)"
        )
    parts: tuple[str, ...]
    if "latency_ms" in cols:
        parts = ("latency_ms",)
    elif {"infer_ms", "load_ms"} <= set(cols):
        parts = ("infer_ms", "load_ms")
    else:
        raise KairosInputError(f"{path}: profile needs a latency_ms column, or infer_ms and load_ms columns")
    samples: dict[str, dict[tuple[str, int], list[float]]] = defaultdict(lambda: defaultdict(list))
    for line, row in enumerate(reader, start=2):
        _no_extra_fields(row, path, line)
        model = (row.get("model") or "").strip()
        inst = (row.get("instance") or "").strip()
        if not model or not inst:
            raise KairosInputError(f"{path} line {line}: empty model or instance")
        b = _number(row.get("batch"), path, line, "batch")
        if b < 1 or b != int(b):
            raise KairosInputError(f"{path} line {line}: batch must be a positive integer, got {row.get('batch')!r}")
        lat = sum(_number(row.get(c), path, line, c) for c in parts)
        if lat <= 0:
            raise KairosInputError(f"{path} line {line}: latency must be > 0 ms (a measured service time), got {lat:g}")
        samples[model][(inst, int(b))].append(lat)
    if not samples:
        raise KairosInputError(f"{path}: profile has a header but no rows")
    return {m: Profile.from_samples(m, {k: np.array(v) for k, v in s.items()}) for m, s in samples.items()}


def _no_extra_fields(row: dict, path, line: int) -> None:
    """csv.DictReader files a row's fields beyond the header under the key None."""
    if row.get(None):
        raise KairosInputError(f"{path} line {line}: more fields than the header's columns; check the commas")


def load_prices(path) -> dict[str, float]:
    """Load ``instance, usd_per_hour`` rows. Returns {instance: $/hour}."""
    path = Path(path)
    reader = csv.DictReader(_open_text(path))
    cols = [c.strip() for c in (reader.fieldnames or [])]
    reader.fieldnames = cols
    if not {"instance", "usd_per_hour"} <= set(cols):
        raise KairosInputError(f"{path}: price list needs columns instance, usd_per_hour")
    prices = {}
    for line, row in enumerate(reader, start=2):
        _no_extra_fields(row, path, line)
        inst = (row["instance"] or "").strip()
        p = _number((row["usd_per_hour"] or "").strip(), path, line, "usd_per_hour")
        if p <= 0:
            raise KairosInputError(f"{path} line {line}: usd_per_hour must be > 0 for {inst!r}")
        if inst in prices:
            raise KairosInputError(f"{path} line {line}: a second price for {inst!r}; give each instance once")
        prices[inst] = p
    if not prices:
        raise KairosInputError(f"{path}: price list has no rows")
    return prices


def parse_config(text: str) -> dict[str, int]:
    """Parse ``TYPE=N,TYPE=N`` into an ordered {type: count} (counts of 0 are dropped)."""
    config: dict[str, int] = {}
    if not text or not text.strip():
        raise KairosInputError("--config is empty; give TYPE=COUNT pairs, e.g. g4dn.xlarge=2,r5n.large=9")
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, count = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise KairosInputError(f"--config entry {part!r} must look like TYPE=COUNT, e.g. r5n.large=9")
        try:
            n = int(count)
        except ValueError:
            raise KairosInputError(f"--config count for {name!r} must be an integer, got {count!r}") from None
        if n < 0:
            raise KairosInputError(f"--config count for {name!r} must be >= 0, got {n}")
        if name in config:
            raise KairosInputError(f"--config names {name!r} twice")
        if n:
            config[name] = n
    if not config:
        raise KairosInputError("--config has no instances; give at least one TYPE=COUNT with COUNT >= 1")
    return config
