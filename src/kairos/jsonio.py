"""JSON output of numpy values (for --json and the result caches)."""

from __future__ import annotations

import numpy as np


def json_default(o):
    """``json.dumps(..., default=json_default)``: numpy scalars and arrays as plain JSON."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))
