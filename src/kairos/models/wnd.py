"""WND: Wide & Deep with the DeepRecSys ``wide_and_deep`` configuration (PyTorch).

DeepRecSys configuration followed (``models/configs/wide_and_deep.json``):
  - dense (continuous) features: 512, passed through unchanged (bottom MLP "512"
    has no layers);
  - 27 embedding tables of 1,000,000 rows x 32 columns, one lookup per table and
    sample;
  - interaction ``cat``: dense features and the 27 embeddings concatenated
    (512 + 27*32 = 1376 features); top MLP 1376-1024-512-256-1, ReLU, sigmoid on
    the output.
Output: click probability, shape [size, 1].

Scaling changes (and only these):
  - every table capped at ``max_rows`` rows (default 100,000 instead of 1,000,000):
    346 MB instead of 3.5 GB. Lookups and layer widths unchanged.
  - weights are random (seeded), not trained.
"""

from __future__ import annotations

import torch
from torch import nn

from kairos.models._layers import DEFAULT_MAX_ROWS, DenseSparseInput, mlp

CONFIG = {
    "dense_features": 512,
    "table_rows": [1_000_000] * 27,
    "embedding_dim": 32,
    "lookups_per_table": 1,
    "top_mlp": [1024, 512, 256, 1],
}


class WideAndDeep(DenseSparseInput, nn.Module):
    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS, config: dict = CONFIG):
        super().__init__()
        c = config
        n_int = c["dense_features"] + self._sparse_input(c, max_rows)
        self.top = mlp([n_int] + c["top_mlp"], sigmoid_last=True)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        e = self.emb(sparse).flatten(1)
        return self.top(torch.cat([dense, e], dim=1))
