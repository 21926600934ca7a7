"""Measure a latency profile of a real model on this machine (imports torch lazily).

For each query size of the grid, after a warm-up, every repetition times two parts,
as the published Kairos data does:

- ``load_ms``: preparing the query's input: synthetic samples drawn on the CPU
  (``make_batch``) and, on a GPU, their transfer to the device (``to_device``
  followed by a device synchronisation);
- ``infer_ms``: the model's forward pass (``infer``), the device synchronised
  after it, and the result brought back to host memory.

The rows (``model, instance, batch, rep, infer_ms, load_ms``) are the catalogue
format that :func:`kairos.profiles.load_profiles` reads, so ``kairos plan``,
``simulate`` and ``serve`` take the file unchanged. ``instance`` is whatever name
the user gives the measured setting (``cpu-1t``, ``cpu-2t``, ``gpu``...).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kairos.errors import KairosInputError

COLUMNS = ("model", "instance", "batch", "rep", "infer_ms", "load_ms")
DEFAULT_BATCHES = tuple(range(10, 1001, 10))  # the published grid: 10, 20, ..., 1000
DEFAULT_REPS = 100
DEFAULT_WARMUP = 3
MAX_BATCH = 100_000


def parse_batches(text: str) -> list[int]:
    """``10,20,50`` or ``START:STOP:STEP`` (inclusive, e.g. ``10:1000:10``), or a mix of both.

    Returns the sorted distinct sizes; every size must be an integer in 1..100000.
    """
    if text is None or not str(text).strip():
        raise KairosInputError("--batches is empty; give sizes such as 10,20,50 or a range 10:1000:10")
    sizes: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if ":" in part:
                bits = [int(b) for b in part.split(":")]
                if len(bits) not in (2, 3):
                    raise ValueError
                start, stop = bits[0], bits[1]
                step = bits[2] if len(bits) == 3 else 1
                if step < 1 or stop < start:
                    raise ValueError
                sizes.update(range(start, stop + 1, step))
            else:
                sizes.add(int(part))
        except ValueError:
            raise KairosInputError(
                f"--batches entry {part!r} is not a size or a range START:STOP[:STEP] (e.g. 10,20,50 or 10:1000:10)"
            ) from None
    if not sizes:
        raise KairosInputError("--batches has no sizes; give e.g. 10,20,50 or 10:1000:10")
    bad = [s for s in sizes if not 1 <= s <= MAX_BATCH]
    if bad:
        raise KairosInputError(
            f"--batches sizes must be in 1..{MAX_BATCH}, got {min(bad) if min(bad) < 1 else max(bad)}"
        )
    return sorted(sizes)


@dataclass
class ProfileRun:
    """The result of one profiling run: raw rows plus what was measured and how."""

    model: str
    instance: str
    device: str
    threads: int
    batches: list[int]
    reps: int
    warmup: int
    seed: int
    max_rows: int
    interleave: bool = False
    rows: list[tuple] = field(default_factory=list)
    elapsed_s: float = 0.0

    def per_batch(self) -> list[dict]:
        """Mean infer_ms / load_ms per batch size (all repetitions)."""
        out = []
        for b in self.batches:
            r = [row for row in self.rows if row[2] == b]
            out.append(
                {
                    "batch": b,
                    "infer_ms": float(np.mean([x[4] for x in r])),
                    "load_ms": float(np.mean([x[5] for x in r])),
                }
            )
        return out

    def summary(self) -> dict:
        return {
            "model": self.model,
            "instance": self.instance,
            "device": self.device,
            "threads": self.threads,
            "batches": self.batches,
            "reps": self.reps,
            "warmup": self.warmup,
            "interleave": self.interleave,
            "seed": self.seed,
            "max_rows": self.max_rows,
            "rows": len(self.rows),
            "elapsed_s": round(self.elapsed_s, 3),
            "per_batch": [
                {"batch": p["batch"], "infer_ms": round(p["infer_ms"], 4), "load_ms": round(p["load_ms"], 4)}
                for p in self.per_batch()
            ],
        }


def profile_model(
    model: str,
    instance: str,
    device: str = "cpu",
    threads: int | None = None,
    batches=DEFAULT_BATCHES,
    reps: int = DEFAULT_REPS,
    warmup: int = DEFAULT_WARMUP,
    seed: int = 0,
    max_rows: int | None = None,
    progress: Callable[[int], None] | None = None,
    interleave: bool = False,
) -> ProfileRun:
    """Profile ``model`` on ``device`` as instance type ``instance``.

    ``threads`` sets ``torch.set_num_threads`` (None: leave PyTorch's default).
    ``warmup`` untimed inferences run at every batch size before its repetitions
    (and once more at the largest size before anything is timed). ``progress`` is
    called with the number of repetitions just completed. ``interleave`` measures
    rep 0 of every size, then rep 1 of every size, ... instead of all repetitions of
    one size after another: on a machine shared with other work, a busy spell then
    spreads over all sizes instead of inflating a few.
    """
    from kairos.models.registry import MODELS, check_device, import_torch, load_model

    if model not in MODELS:
        raise KairosInputError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    instance = (instance or "").strip()
    if not instance or any(c in instance for c in ',\n\r"='):
        raise KairosInputError(f"--instance must be a non-empty name without commas, quotes or '=', got {instance!r}")
    if int(reps) < 1:
        raise KairosInputError(f"--reps must be >= 1, got {reps}")
    if int(warmup) < 0:
        raise KairosInputError(f"--warmup must be >= 0, got {warmup}")
    batches = sorted({int(b) for b in batches})
    if not batches or batches[0] < 1:
        raise KairosInputError("batch sizes must be positive integers")
    torch = import_torch()
    device = check_device(device)
    if threads is not None:
        if int(threads) < 1:
            raise KairosInputError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(int(threads))
    m = load_model(model, seed=seed, device=device, max_rows=max_rows)
    run = ProfileRun(
        model,
        instance,
        device,
        torch.get_num_threads(),
        batches,
        int(reps),
        int(warmup),
        int(seed),
        m.max_rows,
        bool(interleave),
    )
    rng = np.random.default_rng(seed)
    clock = time.perf_counter

    def once(b: int) -> tuple[float, float]:
        t0 = clock()
        x = m.to_device(m.make_batch(b, rng))
        m.synchronize()
        t1 = clock()
        y = m.infer(x)
        m.synchronize()
        y = y.cpu()
        t2 = clock()
        return (t2 - t1) * 1e3, (t1 - t0) * 1e3

    def record(b: int, r: int) -> None:
        infer_ms, load_ms = once(b)
        run.rows.append((model, instance, b, r, round(infer_ms, 4), round(load_ms, 4)))
        if progress is not None:
            progress(1)

    start = clock()
    for _ in range(max(1, int(warmup))):
        once(batches[-1])
    if interleave:
        for _ in range(int(warmup)):
            for b in batches:
                once(b)
        for r in range(int(reps)):
            for b in batches:
                record(b, r)
        run.rows.sort(key=lambda row: (row[2], row[3]))
    else:
        for b in batches:
            for _ in range(int(warmup)):
                once(b)
            for r in range(int(reps)):
                record(b, r)
    run.elapsed_s = clock() - start
    return run


def write_profile_csv(path, rows, append: bool = False) -> int:
    """Write rows as a catalogue-format CSV; returns the number of rows in the file.

    With ``append``, an existing file keeps its rows except those of the same
    (model, instance) as the new rows, which are replaced; every instance of a
    model must then share the same batch sizes (the planner and simulator need
    every type measured at every size), else this refuses with the sizes missing.
    """
    path = Path(path)
    rows = [tuple(r) for r in rows]
    keep: list[tuple] = []
    if append and path.exists():
        keep = _read_rows(path)
        replaced = {(r[0], r[1]) for r in rows}
        keep = [r for r in keep if (r[0], r[1]) not in replaced]
        _check_same_grid(path, keep + rows)
    all_rows = keep + rows
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in all_rows:
        w.writerow(r)
    if path.parent and not path.parent.exists():
        raise KairosInputError(f"--out: folder {path.parent} does not exist")
    path.write_text(buf.getvalue())
    return len(all_rows)


def check_out_path(path, append: bool, model: str, instance: str, batches) -> None:
    """Refuse, before measuring anything, an --out the run could not be written to."""
    path = Path(path)
    if path.is_dir():
        raise KairosInputError(f"--out {path} is a directory; give a file name")
    if not path.parent.exists():
        raise KairosInputError(f"--out: folder {path.parent} does not exist")
    if append and path.exists():
        new = [(model, instance, int(b), 0, 0.0, 0.0) for b in batches]
        old = [r for r in _read_rows(path) if (r[0], r[1]) != (model, instance)]
        _check_same_grid(path, old + new)


def _read_rows(path: Path) -> list[tuple]:
    text = path.read_text()
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return []
    if tuple(c.strip() for c in header) != COLUMNS:
        raise KairosInputError(
            f"--append: {path} has columns {','.join(header)}, expected {','.join(COLUMNS)}; "
            f"write to a new file instead"
        )
    out = []
    for line, r in enumerate(reader, start=2):
        if not r:
            continue
        try:
            out.append((r[0], r[1], int(r[2]), int(r[3]), float(r[4]), float(r[5])))
        except (ValueError, IndexError):
            raise KairosInputError(f"--append: {path} line {line} is not a profile row") from None
    return out


def _check_same_grid(path: Path, rows: list[tuple]) -> None:
    grids: dict[str, dict[str, set[int]]] = {}
    for r in rows:
        grids.setdefault(r[0], {}).setdefault(r[1], set()).add(int(r[2]))
    for model, by_inst in grids.items():
        sets = list(by_inst.items())
        ref_inst, ref = sets[0]
        for inst, s in sets[1:]:
            if s != ref:
                diff = sorted(s ^ ref)
                raise KairosInputError(
                    f"--append: in {path}, model {model!r} instance {inst!r} and {ref_inst!r} were measured "
                    f"at different batch sizes (e.g. {diff[0]}); use the same --batches for every instance"
                )
