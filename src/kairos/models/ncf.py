"""NCF: Neural Collaborative Filtering with the DeepRecSys ``ncf`` configuration (PyTorch).

DeepRecSys configuration followed (``models/configs/ncf.json`` and ``models/ncf.py``):
  - 4 embedding tables x 64 columns: two matrix-factorisation (MF) tables of
    140,000 rows (user, item) and two MLP tables of 28,000 rows (user, item); one
    lookup per table and sample;
  - MF branch: element-wise product of the two MF embeddings (64);
  - MLP branch: the two MLP embeddings concatenated (128), MLP 128-256-256-128-64
    (ReLU);
  - both branches concatenated (64 + 64 = 128) and a final layer 128-64 (ReLU),
    exactly the config's last width.
  DeepRecSys's code joins the MF embeddings with an element-wise Sum (its comment
  says "multiplies"); we multiply, as NCF does: same cost.
Output: shape [size, 64].

Scaling changes (and only these):
  - every table capped at ``max_rows`` rows (default 100,000, so the two MF tables
    have 100,000 rows instead of 140,000): 77 MB instead of 86 MB.
  - weights are random (seeded), not trained.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kairos.models._layers import DEFAULT_MAX_ROWS, StackedEmbeddings, capped, mlp

CONFIG = {
    "table_rows": [140_000, 140_000, 28_000, 28_000],
    "embedding_dim": 64,
    "lookups_per_table": 1,
    "mlp": [256, 256, 128, 64],
    "final": 64,
}


class NCF(nn.Module):
    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS, config: dict = CONFIG):
        super().__init__()
        c = config
        d = c["embedding_dim"]
        self.lookups = c["lookups_per_table"]
        self.emb = StackedEmbeddings(capped(c["table_rows"], max_rows), d)
        self.mlp = mlp([2 * d] + c["mlp"])
        self.final = mlp([d + c["mlp"][-1], c["final"]])

    def make_batch(self, size: int, rng: np.random.Generator) -> dict:
        return {"sparse": self.emb.random_indices(size, self.lookups, rng)}

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        e = self.emb(sparse)  # [B, 4, d]
        mf = e[:, 0] * e[:, 1]
        deep = self.mlp(e[:, 2:].flatten(1))
        return self.final(torch.cat([mf, deep], dim=1))
