"""Building blocks shared by the five recommendation models (imports torch).

- :class:`StackedEmbeddings`: several embedding tables held in one weight matrix
  (one row block per table), looked up with ``embedding_bag(mode="sum")``: the
  SparseLengthsSum operator of DeepRecSys's Caffe2 models, with a fixed number of
  lookups per table and sample.
- :func:`mlp`: the DeepRecSys ``create_mlp``: Linear + ReLU per layer, optionally
  a sigmoid instead of the last ReLU.
- :func:`init_weights`: deterministic random weights from a seeded CPU generator,
  with DeepRecSys's initialisation (embedding rows uniform on +-sqrt(1/rows),
  weight matrices normal with std sqrt(2/(fan_in+fan_out)), biases normal with
  std sqrt(1/fan_out)). Nothing is downloaded; same seed, same weights.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# Every table is capped at this many rows (the DeepRecSys configurations use 28k..5M
# rows per table, 3.5-4.1 GB per model at full size; capped, all five models together
# take about 2.3 GB). See the model modules for each model's numbers.
DEFAULT_MAX_ROWS = 100_000


def capped(rows, max_rows: int) -> list[int]:
    return [int(min(r, max_rows)) for r in rows]


class StackedEmbeddings(nn.Module):
    """``len(rows)`` tables of ``dim`` columns in one parameter; sum-pooled lookups."""

    offsets: torch.Tensor  # [tables] first row of each table (a buffer)

    def __init__(self, rows: list[int], dim: int):
        super().__init__()
        self.rows = list(rows)
        self.dim = dim
        self.weight = nn.Parameter(torch.empty(sum(self.rows), dim), requires_grad=False)
        starts = np.concatenate([[0], np.cumsum(self.rows)[:-1]]).astype(np.int64)
        self.register_buffer("offsets", torch.from_numpy(starts), persistent=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx [B, T, L] (row ids within each table) -> [B, T, dim] (sum over L)."""
        b, t, lookups = idx.shape
        flat = (idx + self.offsets.view(1, t, 1)).reshape(b * t, lookups)
        if lookups == 1:
            out = F.embedding(flat[:, 0], self.weight)
        else:
            out = F.embedding_bag(flat, self.weight, mode="sum")
        return out.view(b, t, self.dim)

    def random_indices(self, size: int, lookups: int, rng: np.random.Generator) -> torch.Tensor:
        """Uniform random row ids [size, tables, lookups] (DeepRecSys's random data generator)."""
        high = np.asarray(self.rows, dtype=np.int64).reshape(1, -1, 1)
        return torch.from_numpy(rng.integers(0, high, size=(size, len(self.rows), lookups), dtype=np.int64))

    def init_(self, gen: torch.Generator) -> None:
        with torch.no_grad():
            start = 0
            for n in self.rows:
                a = math.sqrt(1.0 / n)
                block = self.weight[start : start + n]
                block.copy_(torch.rand(block.shape, generator=gen) * (2 * a) - a)
                start += n


class DenseSparseInput:
    """Mixin: a query's samples as dense features plus sparse lookups into ``self.emb``
    (DLRM, WND and MT-WND share this input; ``dense_features``/``lookups`` set by the model)."""

    def make_batch(self, size: int, rng: np.random.Generator) -> dict:
        return {
            "dense": torch.from_numpy(rng.random((size, self.dense_features), dtype=np.float32)),
            "sparse": self.emb.random_indices(size, self.lookups, rng),
        }

    def _sparse_input(self, c: dict, max_rows: int) -> int:
        """Set the input's sizes and ``self.emb`` from a DeepRecSys configuration ``c`` (tables
        capped at ``max_rows`` rows); returns the width of the flattened embeddings."""
        self.dense_features = c["dense_features"]
        self.lookups = c["lookups_per_table"]
        self.emb = StackedEmbeddings(capped(c["table_rows"], max_rows), c["embedding_dim"])
        return len(c["table_rows"]) * c["embedding_dim"]


def mlp(sizes: list[int], sigmoid_last: bool = False) -> nn.Sequential:
    """Linear(sizes[i-1], sizes[i]) + ReLU for each layer; sigmoid after the last if asked."""
    layers: list[nn.Module] = []
    for i in range(1, len(sizes)):
        layers.append(nn.Linear(sizes[i - 1], sizes[i]))
        last = i == len(sizes) - 1
        layers.append(nn.Sigmoid() if (last and sigmoid_last) else nn.ReLU())
    return nn.Sequential(*layers)


def init_weights(module: nn.Module, seed: int) -> None:
    """Fill every parameter of ``module`` deterministically from ``seed`` (CPU generator)."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.no_grad():
        for name, p in module.named_parameters():
            owner = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
            if isinstance(owner, StackedEmbeddings):
                continue
            if p.dim() >= 2:
                fan_out, fan_in = p.shape[0], int(np.prod(p.shape[1:]))
                std = math.sqrt(2.0 / (fan_in + fan_out))
            else:
                std = math.sqrt(1.0 / p.shape[0])
            p.copy_(torch.randn(p.shape, generator=gen) * std)
        for m in module.modules():
            if isinstance(m, StackedEmbeddings):
                m.init_(gen)
    for p in module.parameters():
        p.requires_grad_(False)
