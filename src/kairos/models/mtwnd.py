"""MT-WND: multi-task Wide & Deep with the DeepRecSys ``mtwnd`` configuration (PyTorch).

DeepRecSys configuration followed (``models/configs/mtwnd.json``):
  - dense features: 512, passed through unchanged (bottom MLP "512");
  - 43 embedding tables x 32 columns: 41 of 500,000 rows and 2 of 5,000,000 rows,
    one lookup per table and sample;
  - interaction ``cat`` (512 + 43*32 = 1888 features); shared top MLP
    1888-1024-512 (ReLU); then one task MLP 512-256-128 per task (ReLU, sigmoid on
    its output). Tasks: 1, DeepRecSys's default ``num_multi_tasks`` (the json does
    not set it, so the published measurements ran one task); ``num_tasks`` changes it.
Output: shape [size, num_tasks, 128].

Scaling changes (and only these):
  - every table capped at ``max_rows`` rows (default 100,000; the config has
    500,000 and 5,000,000): 550 MB instead of 3.9 GB. Lookups and widths unchanged.
  - weights are random (seeded), not trained.
"""

from __future__ import annotations

import torch
from torch import nn

from kairos.models._layers import DEFAULT_MAX_ROWS, DenseSparseInput, mlp

CONFIG = {
    "dense_features": 512,
    "table_rows": [500_000] * 41 + [5_000_000] * 2,
    "embedding_dim": 32,
    "lookups_per_table": 1,
    "top_mlp": [1024, 512],
    "task_mlp": [512, 256, 128],
    "num_tasks": 1,
}


class MultiTaskWideAndDeep(DenseSparseInput, nn.Module):
    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS, config: dict = CONFIG, num_tasks: int | None = None):
        super().__init__()
        c = config
        n_int = c["dense_features"] + self._sparse_input(c, max_rows)
        self.top = mlp([n_int] + c["top_mlp"])
        tasks = c["num_tasks"] if num_tasks is None else int(num_tasks)
        self.tasks = nn.ModuleList([mlp(c["task_mlp"], sigmoid_last=True) for _ in range(tasks)])

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        e = self.emb(sparse).flatten(1)
        shared = self.top(torch.cat([dense, e], dim=1))
        return torch.stack([t(shared) for t in self.tasks], dim=1)
