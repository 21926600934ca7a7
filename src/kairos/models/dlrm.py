"""RM2: DLRM with the DeepRecSys ``dlrm_rm2`` configuration (PyTorch).

DeepRecSys configuration followed (``models/configs/dlrm_rm2.json``):
  - dense features: 256; bottom MLP 256-128-64 (ReLU);
  - 32 embedding tables of 500,000 rows x 64 columns; 120 lookups per table and
    sample (``num_indices_per_lookup=120``, fixed), sum-pooled (SparseLengthsSum);
  - interaction ``cat``: bottom-MLP output and the 32 pooled vectors concatenated
    (64 + 32*64 = 2112 features); top MLP 2112-128-64-1, ReLU, sigmoid on the output.
Output: click probability, shape [size, 1].

Scaling changes (and only these):
  - every table capped at ``max_rows`` rows (default 100,000 instead of 500,000), so
    the tables take 32 * 100,000 * 64 * 4 B = 819 MB instead of 4.1 GB. Lookups per
    sample and all layer widths are unchanged, so the work per query is the same;
    smaller tables only touch fewer distinct cache lines.
  - weights are random (seeded), not trained: latency does not depend on the values.
"""

from __future__ import annotations

import torch
from torch import nn

from kairos.models._layers import DEFAULT_MAX_ROWS, DenseSparseInput, mlp

CONFIG = {
    "dense_features": 256,
    "bottom_mlp": [256, 128, 64],
    "table_rows": [500_000] * 32,
    "embedding_dim": 64,
    "lookups_per_table": 120,
    "top_mlp": [128, 64, 1],
}


class DLRM(DenseSparseInput, nn.Module):
    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS, config: dict = CONFIG):
        super().__init__()
        c = config
        self.bottom = mlp(c["bottom_mlp"])
        n_int = c["bottom_mlp"][-1] + self._sparse_input(c, max_rows)
        self.top = mlp([n_int] + c["top_mlp"], sigmoid_last=True)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        x = self.bottom(dense)
        e = self.emb(sparse).flatten(1)
        return self.top(torch.cat([x, e], dim=1))
