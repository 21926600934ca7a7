"""``load_model``: the one entry point to the five models (imports torch lazily).

The object it returns is what ``kairos profile`` measures and what the gateway's
torch workers run:

- ``.name``: the model name; ``.device``: "cpu" or "cuda[:N]";
- ``.make_batch(size, rng)``: synthetic input of one query of ``size`` samples, as
  CPU tensors (a dict): the "load" step;
- ``.to_device(batch)``: the batch on the model's device (part of the load step on
  CUDA; the identity on CPU);
- ``.infer(batch)``: inference under ``torch.inference_mode()``; a tensor of shape
  [size, ...] on the model's device;
- ``.synchronize()``: wait for the device (a no-op on CPU), for timing.
"""

from __future__ import annotations

import os
import re

from kairos.errors import KairosInputError

MODELS = ("rm2", "wnd", "mtwnd", "dien", "ncf")

# name -> (module, class) under kairos.models
_CLASSES = {
    "rm2": ("dlrm", "DLRM"),
    "wnd": ("wnd", "WideAndDeep"),
    "mtwnd": ("mtwnd", "MultiTaskWideAndDeep"),
    "dien": ("dien", "DIEN"),
    "ncf": ("ncf", "NCF"),
}

MAX_ROWS_ENV = "KAIROS_MODEL_MAX_ROWS"


def import_torch():
    """Import torch, or say in one line how to install it."""
    try:
        import torch
    except ImportError:
        raise KairosInputError(
            "PyTorch is not installed; install the models extra: pip install 'kairos-serve[models]'"
        ) from None
    return torch


def check_device(device: str) -> str:
    torch = import_torch()
    device = str(device).strip().lower()
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise KairosInputError(
                "--device cuda: CUDA is not available on this machine (no GPU or a CPU-only PyTorch build)"
            )
        if ":" in device:
            try:
                idx = int(device.split(":", 1)[1])
            except ValueError:
                raise KairosInputError(f"bad device {device!r}; use cpu, cuda or cuda:N") from None
            if not 0 <= idx < torch.cuda.device_count():
                raise KairosInputError(
                    f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
                )
        return device
    raise KairosInputError(f"unknown device {device!r}; use cpu or cuda")


_CPU_THREADS = re.compile(r"^cpu-(\d+)t$")
_CUDA = re.compile(r"^(cuda(:\d+)?|gpu)(-.*)?$")


def local_type_settings(type_name: str) -> dict:
    """How to run a *local* instance type named by the convention of docs/local-profiles.md.

    ``cpu-<N>t`` -> ``{"device": "cpu", "threads": N}``; ``cuda``, ``cuda:N``, ``gpu`` (optionally
    followed by ``-anything``) -> ``{"device": "cuda[:N]"}``; any other name -> ``{}`` (defaults).
    ``kairos profile --instance cpu-2t --threads 2`` and a torch worker serving type ``cpu-2t``
    then run the model the same way.
    """
    name = str(type_name).strip().lower()
    m = _CPU_THREADS.match(name)
    if m and int(m.group(1)) >= 1:
        return {"device": "cpu", "threads": int(m.group(1))}
    m = _CUDA.match(name)
    if m:
        return {"device": "cuda" + (m.group(2) or "")}
    return {}


class LoadedModel:
    """A model with random weights on a device, behind the profiling/serving interface."""

    def __init__(self, name: str, module, device: str, seed: int, max_rows: int):
        self.name = name
        self.module = module
        self.device = device
        self.seed = seed
        self.max_rows = max_rows

    def __repr__(self) -> str:
        return f"LoadedModel({self.name!r}, device={self.device!r}, seed={self.seed}, max_rows={self.max_rows})"

    def make_batch(self, size: int, rng) -> dict:
        size = int(size)
        if size < 1:
            raise KairosInputError(f"batch size must be >= 1, got {size}")
        return self.module.make_batch(size, rng)

    def to_device(self, batch: dict) -> dict:
        if self.device == "cpu":
            return batch
        return {k: v.to(self.device, non_blocking=False) for k, v in batch.items()}

    def infer(self, batch: dict):
        import torch

        with torch.inference_mode():
            return self.module(**batch)

    def synchronize(self) -> None:
        if self.device != "cpu":
            import torch

            torch.cuda.synchronize(self.device)


def load_model(name: str, seed: int = 0, device: str = "cpu", *, max_rows: int | None = None) -> LoadedModel:
    """Build model ``name`` (one of :data:`MODELS`) with weights drawn from ``seed``, on ``device``.

    ``max_rows`` caps the rows of every embedding table (default 100,000, or the
    ``KAIROS_MODEL_MAX_ROWS`` environment variable); see each model's module for
    the DeepRecSys configuration and what the cap changes.
    """
    key = str(name).strip().lower()
    if key not in _CLASSES:
        raise KairosInputError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    torch = import_torch()
    device = check_device(device)
    from importlib import import_module

    from kairos.models._layers import DEFAULT_MAX_ROWS, init_weights

    if max_rows is None:
        env = os.environ.get(MAX_ROWS_ENV)
        try:
            max_rows = int(env) if env else DEFAULT_MAX_ROWS
        except ValueError:
            raise KairosInputError(f"{MAX_ROWS_ENV} must be an integer, got {env!r}") from None
    if int(max_rows) < 1:
        raise KairosInputError(f"max_rows must be >= 1, got {max_rows}")
    mod_name, cls_name = _CLASSES[key]
    cls = getattr(import_module(f"kairos.models.{mod_name}"), cls_name)
    module = cls(max_rows=int(max_rows))
    init_weights(module, int(seed))
    module = module.to(torch.device(device)).eval()
    return LoadedModel(key, module, device, int(seed), int(max_rows))
