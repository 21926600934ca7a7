"""A picture of an elastic run: the load and the pool, over time (a PNG).

Drawn from :attr:`kairos.elastic.simulate.ElasticResult.timeline` (one entry per
controller decision: its time, the arrivals since the previous decision, the forecast
and the instances per type ready and starting after the decision). matplotlib is
optional (extra ``reproduce``): :func:`require_matplotlib` says how to get it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kairos.errors import KairosInputError

INSTALL_HINT = "pip install 'kairos-serve[reproduce]'"


def require_matplotlib(flag: str = "--plot") -> None:
    """A KairosInputError naming ``flag`` and the extra to install, if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise KairosInputError(f"{flag} needs matplotlib, which is not installed: {INSTALL_HINT}") from None


def load_series(timeline: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(decision times s, observed arrival rate q/s over the interval ending there, forecast q/s)."""
    t = np.array([e["t_s"] for e in timeline], dtype=float)
    arrivals = np.array([e["arrivals"] for e in timeline], dtype=float)
    span = np.diff(t, prepend=0.0)
    rate = np.divide(arrivals, span, out=np.zeros_like(arrivals), where=span > 0)
    forecast = np.array([e["forecast_qps"] for e in timeline], dtype=float)
    return t, rate, forecast


def pool_series(timeline: list[dict]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(instance types in order of first appearance, ready[type, decision], starting[type, decision])."""
    types: list[str] = []
    for e in timeline:
        for side in ("ready", "starting"):
            for name in e[side]:
                if name not in types:
                    types.append(name)
    ready = np.array([[e["ready"].get(x, 0) for e in timeline] for x in types], dtype=float).reshape(len(types), -1)
    starting = np.array([[e["starting"].get(x, 0) for e in timeline] for x in types], dtype=float).reshape(
        len(types), -1
    )
    return types, ready, starting


def plot_timeline(timeline: list[dict], path: str | Path, title: str = "", start_s: float = 0.0) -> Path:
    """Write a PNG of ``timeline``: above, the arrival rate per decision interval and the
    controller's forecast; below, the instances of each type serving (stacked) and the
    pool with those still starting, as each decision left them (held until the next).
    ``start_s`` shifts the time axis (a slice of a longer trace keeps its own clock).
    Returns the path written."""
    require_matplotlib()
    if not timeline:
        raise KairosInputError("--plot: nothing to draw; the replay ended before the controller's first decision")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, rate, forecast = load_series(timeline)
    types, ready, starting = pool_series(timeline)
    span = np.diff(t, prepend=0.0)
    # arrivals cover the interval ending at a decision; a decision's forecast and pool hold until the next one
    before = np.concatenate([[t[0] - span[0]], t])
    after = np.concatenate([t, [t[-1] + span[-1]]])
    unit, per = ("h", 3600.0) if after[-1] - before[0] > 3 * 3600 else ("min", 60.0)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6), height_ratios=(1, 1.2))
    top.stairs(
        rate,
        (before + start_s) / per,
        baseline=None,
        lw=0.8,
        color="C0",
        label="arrivals (q/s over each decision interval)",
    )
    top.stairs(
        forecast,
        (after + start_s) / per,
        baseline=None,
        lw=1.0,
        color="C3",
        ls="--",
        label="forecast (q/s, before headroom)",
    )
    top.set_ylabel("load (q/s)")
    top.set_ylim(0, 1.3 * max(float(rate.max()), float(forecast.max()), 1e-9))  # room above for the legend
    top.legend(fontsize=8, loc="upper left", ncols=2)
    edges = (after + start_s) / per
    base = np.zeros(len(t))
    for i, name in enumerate(types):
        bottom.stairs(
            base + ready[i], edges, baseline=base, fill=True, color=f"C{i % 10}", alpha=0.8, label=f"{name} ready"
        )
        base = base + ready[i]
    if types:
        bottom.stairs(
            ready.sum(axis=0) + starting.sum(axis=0),
            edges,
            baseline=None,
            color="k",
            lw=0.9,
            ls=":",
            label="ready + starting",
        )
    bottom.set_ylabel("instances")
    bottom.set_xlabel(f"time ({unit})")
    bottom.set_ylim(0, 1.3 * max(float((ready + starting).sum(axis=0).max(initial=0.0)), 1.0))
    bottom.legend(fontsize=8, loc="upper left", ncols=min(len(types) + 1, 4))
    if title:
        top.set_title(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
