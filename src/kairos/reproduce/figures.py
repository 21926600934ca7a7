"""PNG figures (matplotlib, Agg backend) from the tables of :func:`kairos.reproduce.report.tables`.

matplotlib is optional (extra ``reproduce``): :func:`available` says whether it can be
imported, and :func:`draw_all` returns the files it wrote.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kairos.dispatch.registry import policy_label
from kairos.reproduce.experiments import DISPATCHERS, EXPLORATION, LOAD_POLICIES, SCHEMES, TABLE1, schemes_in
from kairos.reproduce.report import LABEL, models_of

COLOUR = {s: f"C{i}" for i, s in enumerate(SCHEMES)}
POLICY_COLOUR = {p: f"C{i}" for i, p in enumerate(DISPATCHERS)}


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grouped_bars(
    path: Path,
    rows: list[dict],
    key: str,
    series,
    value: str,
    label,
    colour,
    ylabel: str,
    title: str,
    legend: dict,
    reference: float | None = None,
) -> None:
    """One group of bars per model, one bar per series (rows[key]), height rows[value]."""
    plt = _plt()
    ms = models_of(rows)
    by = {(r["model"], r[key]): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(ms) + 3), 4))
    w = 0.8 / len(series)
    for i, s in enumerate(series):
        v = [(by[(m, s)][value] or 0) if (m, s) in by else 0 for m in ms]
        ax.bar(np.arange(len(ms)) + (i - len(series) / 2 + 0.5) * w, v, w, label=label(s), color=colour[s])
    if reference is not None:
        ax.axhline(reference, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(ms)), ms)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, **legend)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig_throughput(t: dict, path: Path) -> None:
    _grouped_bars(
        path,
        t["table1_throughput"],
        "scheme",
        TABLE1,
        "norm_to_optimum",
        LABEL.get,
        COLOUR,
        "QoS-throughput / optimum",
        "QoS-throughput at $2.5/h, normalised to the exhaustive optimum",
        {"ncol": 4, "loc": "lower center", "bbox_to_anchor": (0.5, -0.35)},
        reference=1.0,
    )


def fig_exploration(t: dict, path: Path) -> None:
    plt = _plt()
    rows = t["table2_exploration"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    marks = "o s ^ D v P X *".split()
    for i, s in enumerate(EXPLORATION):
        pts = [(r["evaluations"], r["norm_to_optimum"] or 0) for r in rows if r["scheme"] == s]
        if pts:
            x, y = zip(*pts)
            ax.scatter(np.asarray(x) + 0.5, y, marker=marks[i % len(marks)], label=LABEL[s], s=40, color=COLOUR[s])
    ax.set_xscale("log")
    ax.set_xlabel("simulated evaluations + 0.5 (log)")
    ax.set_ylabel("QoS-throughput of the choice / optimum")
    ax.set_title("Exploration cost (one point per model)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig_sensitivity(t: dict, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    schemes = schemes_in("sweep-figure")
    for ax, key, rows, xl in (
        (axes[0], "budget", t["table3a_budget"], "budget ($/h)"),
        (axes[1], "qos_factor", t["table3b_qos"], "QoS target / paper's"),
    ):
        for s in schemes:
            pts: dict[float, list[float]] = {}
            for r in rows:
                if r["scheme"] == s and r.get("norm_to_optimum") is not None:
                    pts.setdefault(r[key], []).append(r["norm_to_optimum"])
            if pts:
                xs = sorted(pts)
                ax.plot(xs, [np.mean(pts[x]) for x in xs], marker="o", label=LABEL[s], color=COLOUR[s])
        ax.set_xlabel(xl)
        ax.set_ylabel("mean over models of QPS / optimum")
        ax.set_ylim(0, 1.1)
        ax.legend(fontsize=7)
    ax = axes[2]
    nz = t["table3c_noise"]
    for p in sorted({r["policy"] for r in nz}):
        pts = {}  # noise -> mean_vs_exact of each model
        for r in nz:
            if r["policy"] == p and r["mean_vs_exact"] is not None:
                pts.setdefault(r["noise"], []).append(r["mean_vs_exact"])
        xs = [0.0] + sorted(pts)
        ax.plot(
            [100 * x for x in xs],
            [1.0] + [float(np.mean(pts[x])) for x in xs[1:]],
            marker="o",
            label=policy_label(p),
            color=POLICY_COLOUR.get(p),
        )
    ax.set_xlabel("estimate noise (+-%)")
    ax.set_ylabel("mean over models of QPS / exact-estimate QPS")
    ax.legend(fontsize=7)
    axes[0].set_title("budget")
    axes[1].set_title("QoS target")
    ax.set_title("noisy latency estimates")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig_load(t: dict, path: Path) -> None:
    plt = _plt()
    win = t["load_windows"]
    ms = models_of(win) if win else []
    if not ms:
        return
    fig, axes = plt.subplots(len(ms), 2, figsize=(13, 3.2 * len(ms)), squeeze=False)
    for i, m in enumerate(ms):
        a1, a2 = axes[i]
        for p in LOAD_POLICIES:
            rows = [r for r in win if r["model"] == m and r["policy"] == p]
            if not rows:
                continue
            x = [r["t_s"] for r in rows]
            a1.plot(x, [100 * r["met"] for r in rows], label=policy_label(p), lw=1, color=POLICY_COLOUR.get(p))
            a2.plot(x, [max(r["p99_ms"], 1e-3) for r in rows], label=policy_label(p), lw=1, color=POLICY_COLOUR.get(p))
        w = next(r for r in t["table4_load"] if r["model"] == m)["window_s"]
        for a in (a1, a2):
            a.set_xlabel("time (s)")
            a.axvspan(40 * w, 50 * w, color="red", alpha=0.1)
        a1.set_ylabel("% within QoS per window")
        a1.set_ylim(0, 101)
        a2.set_yscale("log")
        a2.set_ylabel("p99 per window (ms)")
        a1.set_title(f"{m}: QoS met (burst shaded)")
        a2.set_title(f"{m}: p99")
        a1.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fig_dispatch(t: dict, path: Path) -> None:
    _grouped_bars(
        path,
        t["table5_dispatch"],
        "policy",
        DISPATCHERS,
        "fraction_of_bound",
        policy_label,
        POLICY_COLOUR,
        "max QPS / fluid bound",
        "Dispatchers on the paper's pools",
        {"ncol": 4},
    )


FIGURES = {
    "fig1_throughput": fig_throughput,
    "fig2_exploration": fig_exploration,
    "fig3_sensitivity": fig_sensitivity,
    "fig4_load": fig_load,
    "fig5_dispatch": fig_dispatch,
}


def draw_all(t: dict, out: Path) -> list[str]:
    """Draw every figure that has data; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fn in FIGURES.items():
        p = out / f"{name}.png"
        p.unlink(missing_ok=True)
        fn(t, p)
        if p.exists():
            written.append(str(p))
    return written
