"""DIEN: Deep Interest Evolution Network with the DeepRecSys ``dien`` configuration (PyTorch).

DeepRecSys configuration followed (``models/configs/dien.json`` and ``models/dien.py``):
  - 43 embedding tables x 32 columns (41 of 500,000 rows, 2 of 5,000,000), one
    lookup per table and sample: table 0 = user profile, tables 1..40 = the user's
    behaviour sequence (40 steps), table 41 = candidate ad, table 42 = context;
  - interest extractor: a tanh RNN (hidden size 64, DeepRecSys's ``hidden_size``
    default) over the 40 behaviour embeddings;
  - attention as DeepRecSys builds it: a 64x64 fully connected layer on every step,
    softmax over the hidden axis, added to the RNN outputs;
  - interest evolution: a second tanh RNN (64 -> 64); its last hidden state;
  - concatenation of that state with the user-profile, candidate-ad and context
    embeddings (64 + 3*32 = 160) and a top MLP 160-200-80-2, ReLU on every layer
    (DeepRecSys's ``create_mlp``).
  DeepRecSys (and so the published measurements) uses vanilla RNN cells where the
  DIEN paper uses GRU / AUGRU; we follow DeepRecSys. Its dense-feature input
  ("arch_mlp_bot": "512") is not used by its DIEN graph, so there is none here.
Output: shape [size, 2].

Scaling changes (and only these):
  - every table capped at ``max_rows`` rows (default 100,000): 550 MB instead of
    3.9 GB. Lookups, sequence length and widths unchanged.
  - weights are random (seeded), not trained.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kairos.models._layers import DEFAULT_MAX_ROWS, StackedEmbeddings, capped, mlp

CONFIG = {
    "table_rows": [500_000] * 41 + [5_000_000] * 2,
    "embedding_dim": 32,
    "lookups_per_table": 1,
    "hidden_size": 64,
    "top_mlp": [200, 80, 2],
}


class DIEN(nn.Module):
    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS, config: dict = CONFIG):
        super().__init__()
        c = config
        self.lookups = c["lookups_per_table"]
        n = len(c["table_rows"])
        self.behaviour = slice(1, n - 2)
        self.others = [0, n - 2, n - 1]  # user profile, candidate ad, context
        d, h = c["embedding_dim"], c["hidden_size"]
        self.emb = StackedEmbeddings(capped(c["table_rows"], max_rows), d)
        self.rnn1 = nn.RNN(d, h, nonlinearity="tanh", batch_first=True)
        self.att = nn.Linear(h, h)
        self.rnn2 = nn.RNN(h, h, nonlinearity="tanh", batch_first=True)
        self.top = mlp([h + 3 * d] + c["top_mlp"])

    def make_batch(self, size: int, rng: np.random.Generator) -> dict:
        return {"sparse": self.emb.random_indices(size, self.lookups, rng)}

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        e = self.emb(sparse)  # [B, 43, d]
        seq, _ = self.rnn1(e[:, self.behaviour])  # [B, 40, h]
        seq = seq + torch.softmax(self.att(seq), dim=2)
        _, h_n = self.rnn2(seq)  # [1, B, h]
        x = torch.cat([h_n[0], e[:, self.others].flatten(1)], dim=1)
        return self.top(x)
