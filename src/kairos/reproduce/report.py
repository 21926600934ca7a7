"""Tables (markdown + CSV) and ``results.md`` from the results of :func:`~kairos.reproduce.experiments.run_all`.

Every table is first built as a list of flat rows (:func:`tables`), written as CSV, and
rendered as markdown; ``results.md`` embeds the figures and, for each of the paper's
claims, a paragraph whose numbers and verdict are computed from the same rows.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from kairos.dispatch.registry import policy_label
from kairos.paper import PAPER_BUDGET
from kairos.reproduce.experiments import (
    DISPATCHERS,
    EXPLORATION,
    KAIROS_PLUS_CAP,
    PRIOR,
    SCHEMES,
    SENSITIVITY,
    TABLE1,
    Settings,
)

LABEL = {name: s.label for name, s in SCHEMES.items()}  # scheme -> heading
TOL = 0.05  # relative slack for "at least" comparisons between finite simulations


def _cfg(config) -> str:
    if not config:
        return "-"
    return " ".join(f"{t.split('.')[0]}={k}" for t, k in sorted(config.items()) if k)


def _f(x, nd=1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{nd}f}"


# ------------------------------------------------------------------------------ rows
def plan_rows(results: dict) -> list[dict]:
    """One row per (model, budget, QoS, scheme), QPS normalised to the optimum of its cell."""
    out = []
    for cell, res in results["plan"]:
        base = {
            "model": cell["model"],
            "budget": cell["budget"],
            "qos_factor": cell["qos_factor"],
            "qos_ms": cell["qos_ms"],
            "queries": cell["queries"],
            "configurations": res.get("configurations"),
        }
        if res.get("infeasible"):
            out.append({**base, "scheme": "infeasible", "note": res["infeasible"]})
            continue
        opt = next((r["qps"] for r in res["rows"] if r["scheme"] == "optimum"), 0.0)
        for r in res["rows"]:
            out.append(
                {
                    **base,
                    "scheme": r["scheme"],
                    "planner": r["planner"],
                    "policy": r["policy"],
                    "config": _cfg(r["config"]),
                    "cost_per_hour": round(r["cost"], 4),
                    "qps": round(r["qps"], 3),
                    "fluid_bound": round(r["bound"], 3),
                    "norm_to_optimum": round(r["qps"] / opt, 4) if opt > 0 else None,
                    "evaluations": r["evaluations"],
                    "planning_s": round(r["planning_s"], 3),
                    "note": r.get("note", ""),
                }
            )
    return out


def dispatch_rows(results: dict) -> list[dict]:
    out = []
    for cell, res in results["dispatch"]:
        out.append(
            {
                "model": cell["model"],
                "config": _cfg(cell["config"]),
                "qos_ms": cell["qos_ms"],
                "policy": cell["policy"],
                "noise": cell["noise"],
                "draw": cell["draw"],
                "max_qps": round(res["qps"], 3),
                "fluid_bound": round(res["bound"], 3),
                "fraction_of_bound": round(res["qps"] / res["bound"], 4) if res["bound"] > 0 else None,
                "params": res.get("params") or "",
            }
        )
    return out


def load_rows(results: dict) -> tuple[list[dict], list[dict]]:
    summary, windows = [], []
    for cell, res in results["load"]:
        met = np.asarray(res["met"])
        n = np.asarray(res["arrivals"])
        burst = slice(40, 50)
        summary.append(
            {
                "model": cell["model"],
                "config": _cfg(cell["config"]),
                "policy": cell["policy"],
                "base_qps": cell["base_qps"],
                "window_s": cell["unit_s"],
                "queries": res["queries"],
                "met_before_burst": round(res["met_before_burst"], 5),
                "met_in_burst": round(float((met[burst] * n[burst]).sum() / max(n[burst].sum(), 1)), 5),
                "met_overall": round(res["qos_met_fraction"], 5),
                "p99_overall_ms": _round(res["p99_overall_ms"]),
                "recovery_windows": res["recovery_units"],
                "recovery_s": res["recovery_s"],
            }
        )
        for k, (a, m, p) in enumerate(zip(res["arrivals"], res["met"], res["p99_ms"])):
            windows.append(
                {
                    "model": cell["model"],
                    "policy": cell["policy"],
                    "window": k,
                    "t_s": round(k * cell["unit_s"], 6),
                    "arrivals": a,
                    "met": m,
                    "p99_ms": p,
                }
            )
    return summary, windows


def _round(x, nd=3):
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def tables(results: dict) -> dict[str, list[dict]]:
    prow = plan_rows(results)
    drow = dispatch_rows(results)
    lsum, lwin = load_rows(results)
    main = [r for r in prow if r["budget"] == PAPER_BUDGET and r["qos_factor"] == 1.0]
    return {
        "table1_throughput": [r for r in main if r["scheme"] in TABLE1],
        "table2_exploration": [r for r in main if r["scheme"] in EXPLORATION],
        "table3a_budget": [r for r in prow if r["qos_factor"] == 1.0],
        "table3b_qos": [r for r in prow if r["budget"] == PAPER_BUDGET],
        "table3c_noise": noise_rows(drow),
        "table4_load": lsum,
        "load_windows": lwin,
        "table5_dispatch": [r for r in drow if r["noise"] == 0],
    }


def noise_rows(drow: list[dict]) -> list[dict]:
    clean = {(r["model"], r["policy"]): r["max_qps"] for r in drow if r["noise"] == 0}
    groups: dict = {}
    for r in drow:
        if r["noise"] > 0:
            groups.setdefault((r["model"], r["policy"], r["noise"]), []).append(r["max_qps"])
    out = []
    for (m, p, x), vals in sorted(groups.items()):
        c = clean.get((m, p))
        ck = clean.get((m, "kairos"))
        out.append(
            {
                "model": m,
                "policy": p,
                "noise": x,
                "draws": len(vals),
                "mean_qps": round(float(np.mean(vals)), 3),
                "min_qps": round(float(np.min(vals)), 3),
                "exact_qps": c,
                "mean_vs_exact": round(float(np.mean(vals)) / c, 4) if c else None,
                "min_vs_exact": round(float(np.min(vals)) / c, 4) if c else None,
                "mean_vs_exact_kairos": round(float(np.mean(vals)) / ck, 4) if ck else None,
            }
        )
    return out


# ------------------------------------------------------------------------------ writing
def write_csv(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _by(rows, *keys):
    out = {}
    for r in rows:
        out[tuple(r[k] for k in keys)] = r
    return out


def models_of(rows) -> list[str]:
    seen = []
    for r in rows:
        if r["model"] not in seen:
            seen.append(r["model"])
    return seen


def md_table1(t: dict) -> str:
    rows = t["table1_throughput"]
    by = _by(rows, "model", "scheme")
    body = []
    for m in models_of(rows):
        line = [m, _f(rows[[r["model"] for r in rows].index(m)]["qos_ms"], 0)]
        for s in TABLE1:
            r = by.get((m, s))
            line.append("-" if r is None else f"{_f(r['qps'])} ({_f(r['norm_to_optimum'], 2)})")
        body.append(line)
    cfgs = [[m] + [by[(m, s)]["config"] if (m, s) in by else "-" for s in TABLE1] for m in models_of(rows)]
    return (
        md_table(["model", "QoS ms"] + [LABEL[s] for s in TABLE1], body)
        + "\n\nConfigurations:\n\n"
        + md_table(["model"] + [LABEL[s] for s in TABLE1], cfgs)
    )


def md_table2(t: dict) -> str:
    rows = t["table2_exploration"]
    by = _by(rows, "model", "scheme")
    body = []
    for m in models_of(rows):
        body.append(
            [m]
            + [
                ("-" if (m, s) not in by else f"{by[(m, s)]['evaluations']} ({_f(by[(m, s)]['norm_to_optimum'], 2)})")
                for s in EXPLORATION
            ]
        )
    return md_table(["model"] + [LABEL[s] + (" [exhaustive]" if s == "optimum" else "") for s in EXPLORATION], body)


def md_sweep(rows: list[dict], key: str, label: str) -> str:
    schemes = SENSITIVITY
    body = []
    for r0 in sorted({(r["model"], r[key]) for r in rows}, key=lambda mk: (models_of(rows).index(mk[0]), mk[1])):
        m, v = r0
        cell = [r for r in rows if r["model"] == m and r[key] == v]
        if cell and cell[0]["scheme"] == "infeasible":
            body.append([m, _f(v, 2)] + ["infeasible"] + [""] * (len(schemes) - 1))
            continue
        by = {r["scheme"]: r for r in cell}
        body.append(
            [m, _f(v, 2)]
            + [("-" if s not in by else f"{_f(by[s]['qps'])} ({_f(by[s]['norm_to_optimum'], 2)})") for s in schemes]
        )
    return md_table(["model", label] + [LABEL[s] for s in schemes], body)


def md_noise(t: dict) -> str:
    rows = t["table3c_noise"]
    body = [
        [
            r["model"],
            r["policy"],
            f"{100 * r['noise']:.0f}%",
            r["draws"],
            _f(r["exact_qps"]),
            _f(r["mean_qps"]),
            _f(r["mean_vs_exact"], 3),
            _f(r["min_vs_exact"], 3),
            _f(r["mean_vs_exact_kairos"], 3),
        ]
        for r in rows
    ]
    return md_table(
        [
            "model",
            "policy",
            "noise",
            "draws",
            "exact estimates q/s",
            "noisy q/s (mean)",
            "noisy / exact (mean)",
            "noisy / exact (worst)",
            "noisy / exact kairos",
        ],
        body,
    )


def md_load(t: dict) -> str:
    rows = t["table4_load"]
    body = [
        [
            r["model"],
            r["policy"],
            _f(r["base_qps"]),
            f"{r['window_s']:g}",
            _f(100 * r["met_before_burst"], 2),
            _f(100 * r["met_in_burst"], 2),
            _f(100 * r["met_overall"], 2),
            _f(r["p99_overall_ms"], 2),
            "never" if r["recovery_s"] is None else f"{r['recovery_s']:.2f}",
        ]
        for r in rows
    ]
    return md_table(
        [
            "model",
            "policy",
            "1x = q/s",
            "window s",
            "met % before burst",
            "met % in burst",
            "met % overall",
            "p99 ms overall",
            "recovery s",
        ],
        body,
    )


def md_dispatch(t: dict) -> str:
    rows = t["table5_dispatch"]
    by = _by(rows, "model", "policy")
    body = []
    for m in models_of(rows):
        cfg = next(r["config"] for r in rows if r["model"] == m)
        body.append(
            [m, cfg]
            + [
                ("-" if (m, p) not in by else f"{_f(by[(m, p)]['max_qps'])} ({_f(by[(m, p)]['fraction_of_bound'], 2)})")
                for p in DISPATCHERS
            ]
            + [_f(by[(m, DISPATCHERS[0])]["fluid_bound"]) if (m, DISPATCHERS[0]) in by else "-"]
        )
    return md_table(["model", "pool"] + [policy_label(p) for p in DISPATCHERS] + ["fluid bound"], body)


def write_tables(t: dict, out: Path) -> str:
    """CSV files and ``tables.md``; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in t.items():
        write_csv(out / f"{name}.csv", rows)
    md = tables_markdown(t)
    (out / "tables.md").write_text(md)
    return md


def tables_markdown(t: dict) -> str:
    parts = ["# Kairos reproduction: tables", ""]
    parts += ["## 1. QoS-throughput at $2.5/h (q/s, and normalised to the optimum)", "", md_table1(t), ""]
    parts += ["## 2. Exploration cost: simulated evaluations (normalised QPS of the choice)", "", md_table2(t), ""]
    parts += ["## 3a. Budget", "", md_sweep(t["table3a_budget"], "budget", "$/h"), ""]
    parts += ["## 3b. QoS target (factor of the paper's)", "", md_sweep(t["table3b_qos"], "qos_factor", "QoS x"), ""]
    parts += ["## 3c. Noisy latency estimates", "", md_noise(t), ""]
    parts += ["## 4. Load change", "", md_load(t), ""]
    parts += [
        "## 5. Dispatch ablation on the paper's pools: max QPS (fraction of the fluid bound)",
        "",
        md_dispatch(t),
        "",
    ]
    return "\n".join(parts)


# ------------------------------------------------------------------------------ claims
def claims(t: dict) -> dict[str, str]:
    """One paragraph per claim, numbers and verdict computed from the tables."""
    out = {}
    main = t["table1_throughput"]
    by = _by(main, "model", "scheme")
    models = models_of(main)

    def ratio(m, a, b):
        ra, rb = by.get((m, a)), by.get((m, b))
        if ra is None or rb is None or not rb["qps"]:
            return None
        return ra["qps"] / rb["qps"]

    # C1: vs best homogeneous
    rp = {m: ratio(m, "kairos", "homogeneous") for m in models}
    ro = {m: ratio(m, "ours", "homogeneous") for m in models}
    best_p = max((v for v in rp.values() if v), default=0.0)
    best_o = max((v for v in ro.values() if v), default=0.0)
    verdict = (
        "holds"
        if max(best_p, best_o) >= 2.0 - 1e-9
        else ("holds in part" if max(best_p, best_o) > 1.25 else "does not hold")
    )
    out["homogeneous"] = (
        f"**Claim: up to 2x the throughput of the best homogeneous pool -- {verdict}.** Kairos as published "
        f"(its planner and dispatcher) reaches {_ratios(rp)} the best homogeneous pool's QoS-throughput at $2.5/h "
        f"(up to {best_p:.2f}x); our planner with our dispatcher reaches {_ratios(ro)} (up to {best_o:.2f}x). "
        f"The slides' weaker form (more than 1.25x) {'holds' if min([v for v in ro.values() if v] or [0]) > 1.25 else 'does not hold'} "
        f"for ours on every model measured."
    )

    # C2: vs prior schemes
    def prior_best(m):
        vals = [by[(m, s)]["qps"] for s in PRIOR if (m, s) in by]
        return max(vals) if vals else None

    gp = {
        m: (by[(m, "kairos")]["qps"] / prior_best(m)) if (m, "kairos") in by and prior_best(m) else None for m in models
    }
    go = {m: (by[(m, "ours")]["qps"] / prior_best(m)) if (m, "ours") in by and prior_best(m) else None for m in models}
    per = {s: max((v for v in (ratio(m, "kairos", s) for m in models) if v), default=0.0) for s in PRIOR}
    per_o = {s: max((v for v in (ratio(m, "ours", s) for m in models) if v), default=0.0) for s in PRIOR}
    up_p = max((v for v in gp.values() if v), default=0.0)
    up_o = max((v for v in go.values() if v), default=0.0)
    over70 = [s for s in PRIOR if per[s] >= 1.7 - 1e-9]
    if up_p >= 1.7 - 1e-9:
        verdict = "holds"
    elif over70:
        verdict = f"holds against {', '.join(LABEL[s] for s in over70)} only"
    else:
        verdict = "does not hold"
    out["prior"] = (
        f"**Claim: up to 70% above prior schemes -- {verdict}.** Kairos as published, against each prior scheme "
        f"(best model): "
        + ", ".join(f"{LABEL[s]} {100 * (per[s] - 1):+.0f}%" for s in PRIOR)
        + f"; against the best of the three per model: {_ratios(gp)} (best {100 * (up_p - 1):+.0f}%). Our planner and "
        f"dispatcher: "
        + ", ".join(f"{LABEL[s]} {100 * (per_o[s] - 1):+.0f}%" for s in PRIOR)
        + f"; against the best of the three: {_ratios(go)} (best {100 * (up_o - 1):+.0f}%). DeepRecSys and Clockwork "
        f"run on the optimum's configuration (found by our exhaustive search), so their gap is dispatch alone; "
        f"RIBBON's gap is mostly its FCFS dispatch."
    )
    # C3: close to optimum
    np_ = {m: by[(m, "kairos")]["norm_to_optimum"] for m in models if (m, "kairos") in by}
    no = {m: by[(m, "ours")]["norm_to_optimum"] for m in models if (m, "ours") in by}
    nk = {m: by[(m, "kairos+")]["norm_to_optimum"] for m in models if (m, "kairos+") in by}
    lo = min(np_.values(), default=0.0)
    verdict = (
        "holds" if lo >= 0.9 else ("holds for our planner" if min(no.values(), default=0) >= 0.95 else "does not hold")
    )
    out["optimum"] = (
        f"**Claim: close to the optimum -- {verdict}.** Normalised to the exhaustive optimum (kairos dispatch), Kairos "
        f"as published is at {_ratios(np_, 'x')} (worst {lo:.2f}); Kairos+ at {_ratios(nk, 'x')}; ours at "
        f"{_ratios(no, 'x')} (worst {min(no.values(), default=0):.2f}). 'Close' is taken as within 10%."
    )
    # exploration
    by2 = _by(t["table2_exploration"], "model", "scheme")
    ev = {
        s: {m: by2[(m, s)]["evaluations"] for m in models if (m, s) in by2}
        for s in ("ribbon", "random", "kairos+", "optimum", "ours")
    }
    out["exploration"] = (
        f"**Exploration cost.** Simulated evaluations (distinct configurations) per model: exhaustive search "
        f"{_ints(ev['optimum'])}, RIBBON {_ints(ev['ribbon'])}, random search {_ints(ev['random'])}, Kairos+ "
        f"{_ints(ev['kairos+'])}, ours (MILP, tie-break simulations only) {_ints(ev['ours'])}, Kairos as published 0. "
        f"The exhaustive count is already pruned by the fluid bound; the configuration spaces hold "
        f"{_ints({m: by[(m, 'optimum')].get('configurations', '') for m in models if (m, 'optimum') in by}) or 'many'} "
        f"configurations."
    )
    # C4: load change
    lr = t["table4_load"]
    if lr:
        rec: dict[str, dict] = {}
        for r in lr:
            rec.setdefault(r["policy"], {})[r["model"]] = r["recovery_s"]
        k = rec.get("kairos", {})
        never = [m for m, v in k.items() if v is None]
        others = {p: v for p, v in rec.items() if p != "kairos"}
        faster = sum(
            1 for p, v in others.items() for m, x in v.items() if k.get(m) is not None and (x is None or x >= k[m])
        )
        total = sum(len(v) for v in others.values())
        verdict = "holds" if not never and faster == total else ("holds in part" if not never else "does not hold")
        out["load"] = (
            f"**Claim: quick adaptation to load changes -- {verdict}.** After a burst at 1.2x the planned pool's max QPS "
            f"(10 windows), the kairos dispatcher is back at >= 99% of queries within QoS per window after "
            f"{_secs(k)}; in {faster} of {total} (dispatcher, model) comparisons no other dispatcher recovers sooner. "
            f"Recovery of the others: " + "; ".join(f"{p} {_secs(v)}" for p, v in others.items()) + ". " + _burst_p99(t)
        )
    # C5: robustness
    b = [r for r in t["table3a_budget"] if r.get("scheme") in ("kairos", "ours")]
    q = [r for r in t["table3b_qos"] if r.get("scheme") in ("kairos", "ours")]
    nz = [r for r in t["table3c_noise"] if r["policy"] == "kairos"]
    nzo = [r for r in t["table3c_noise"] if r["policy"] == "kairos-online"]

    def rng(rows, s):
        v = [r["norm_to_optimum"] for r in rows if r["scheme"] == s and r["norm_to_optimum"] is not None]
        return (min(v), max(v), len(v)) if v else None

    parts = []
    for name, rows in (("budget", b), ("QoS target", q)):
        rp_, ro_ = rng(rows, "kairos"), rng(rows, "ours")
        if rp_ and ro_:
            parts.append(
                f"across {name} settings ({ro_[2]} cells) ours stays at {ro_[0]:.2f}-{ro_[1]:.2f} of the optimum "
                f"and Kairos as published at {rp_[0]:.2f}-{rp_[1]:.2f}"
            )
    if nz:
        worst = min(nz, key=lambda r: r["min_vs_exact"] or 0)
        parts.append(
            f"with estimates perturbed by up to {100 * max(r['noise'] for r in nz):.0f}% the kairos "
            f"dispatcher keeps {min(r['mean_vs_exact'] for r in nz):.2f}-{max(r['mean_vs_exact'] for r in nz):.2f} "
            f"of its exact-estimate QPS on average (worst single draw {worst['min_vs_exact']:.2f}, {worst['model']} "
            f"at {100 * worst['noise']:.0f}%)"
        )
    if nzo:
        v = [r["mean_vs_exact_kairos"] or 0 for r in nzo]
        worst = min(nzo, key=lambda r: r["mean_vs_exact_kairos"] or 0)
        parts.append(
            f"kairos-online (the same matching, estimates corrected from the service times it observes) "
            f"keeps {min(v):.2f}-{max(v):.2f} of kairos's exact-estimate QPS on average under the same noise "
            f"(lowest: {worst['model']} at {100 * worst['noise']:.0f}%)"
        )
    noisy = nzo or nz
    key = "mean_vs_exact_kairos" if nzo else "mean_vs_exact"
    ok_noise = bool(noisy) and all((r[key] or 0) >= 0.9 for r in noisy)
    ok_b = (rng(b, "ours") or (0,))[0] >= 0.9
    ok_q = (rng(q, "ours") or (0,))[0] >= 0.9
    pk = [r for r in b + q if r["scheme"] == "kairos" and r["norm_to_optimum"] is not None]
    ok_paper = bool(pk) and min(r["norm_to_optimum"] for r in pk) >= 0.9
    verdict = (
        "holds"
        if ok_noise and ok_b and ok_q and ok_paper
        else "holds for our planner and dispatcher"
        if ok_noise and ok_b and ok_q
        else "holds in part"
    )
    out["robust"] = (
        f"**Claim: robust to budget, QoS target and noisy estimates -- {verdict}.** "
        + "; ".join(parts)
        + ". (Within 10% of the optimum, and 90% of the exact-estimate QPS, count as robust.)"
    )
    return out


def _above_bound(t: dict) -> str:
    """How often (and by how much) a finite run passed its configuration's fluid bound."""
    rows = [
        (r["qps"], r["fluid_bound"])
        for r in t["table3a_budget"] + t["table3b_qos"]
        if r.get("qps") and r.get("fluid_bound")
    ]
    rows += [
        (r["max_qps"], r["fluid_bound"]) for r in t["table5_dispatch"] if r.get("max_qps") and r.get("fluid_bound")
    ]
    over = [q / b for q, b in rows if q > b * 1.0001]
    if not over:
        return "No measured QPS passed its configuration's fluid bound."
    return (
        f"{len(over)} of {len(rows)} measured QPS values passed their configuration's fluid bound, by up to "
        f"{100 * (max(over) - 1):.1f}%: within the 99% criterion a matching dispatcher serves queries that can no "
        "longer meet QoS only on otherwise idle instances, so above the sustainable rate they are served after "
        "the last arrival (docs/dispatch.md, 'The fluid bound')."
    )


def _burst_p99(t: dict) -> str:
    """Highest per-window p99 during the burst: kairos against the others (per model)."""
    win = t["load_windows"]
    parts = []
    for m in models_of(win):
        peak: dict[str, float] = {}
        for r in win:
            if r["model"] == m and 40 <= r["window"] < 50:
                peak[r["policy"]] = max(peak.get(r["policy"], 0.0), r["p99_ms"])
        if "kairos" in peak and len(peak) > 1:
            rest = max(v for p, v in peak.items() if p != "kairos")
            parts.append(f"{m} {peak['kairos']:.0f} vs {rest:.0f} ms")
    if not parts:
        return ""
    return (
        "In the burst kairos keeps most queries within QoS by serving the ones already late last, so the few "
        "it misses wait long: its per-window p99 peaks as high as the others' (peak p99, kairos vs the highest "
        "other dispatcher: " + ", ".join(parts) + ")."
    )


def _ratios(d: dict, unit: str = "x") -> str:
    return ", ".join(f"{m} {v:.2f}{unit}" for m, v in d.items() if v is not None) or "n/a"


def _ints(d: dict) -> str:
    return ", ".join(f"{m} {v}" for m, v in d.items())


def _secs(d: dict) -> str:
    return ", ".join(f"{m} {'never' if v is None else f'{v:.2f} s'}" for m, v in d.items()) or "n/a"


def results_markdown(t: dict, s: Settings, fig_prefix: str, figures: list[str], meta: dict) -> str:
    c = claims(t)
    fig = {Path(f).stem: f"{fig_prefix}{Path(f).name}" for f in figures}

    def img(stem, alt):
        return f"![{alt}]({fig[stem]})\n" if stem in fig else "(figure not drawn: matplotlib missing)\n"

    lines = [
        "# Kairos: the paper's evaluation, reproduced",
        "",
        f"Generated by `{meta.get('command', 'kairos reproduce')}` ({'quick' if s.quick else 'full'} settings: "
        f"models {', '.join(s.models)}; {s.queries:,} queries per simulation, seed {s.seed}; deeprecsys size mix; "
        f"built-in AWS catalogue unless a profile was given). Every QoS-throughput is the highest Poisson rate at "
        f"which >= 99% of queries finish within the p99 QoS target, found by the same max-QPS search "
        f"(`kairos simulate --max-qps`) on the same queries."
        + (f" {meta['status']}" if meta.get("status") else "")
        + (
            f" This invocation ran {meta['wall_s']:.0f} s (wall) with --jobs {meta.get('jobs', 1)}; cells found in "
            f"the cache were not re-run."
            if meta.get("wall_s")
            else ""
        ),
        "",
        "Schemes: *best homogeneous* -- the best single-type pool (kairos dispatch); *RIBBON* -- "
        f"`run_method('ribbon')`, Bayesian optimisation with {s.search_evals} evaluations and FCFS dispatch; "
        "*DeepRecSys\\** and *Clockwork\\** -- those dispatch policies on the optimum's configuration (the paper gave "
        "prior schemes the best configuration of an offline search; we give them the exhaustive optimum's); *Kairos "
        "(paper)* -- the paper's planner (centre of the top-10 by its bound) with the published dispatcher "
        "(`kairos-paper`); *Kairos+* -- Algorithm 1 (kairos dispatch); *ours* -- the default planner (queueing-corrected "
        "MILP) with our `kairos` dispatcher; *optimum* -- the exhaustive search (every configuration whose fluid bound "
        "exceeds the best measured QPS), kairos dispatch.",
        "",
        "## 1. QoS-throughput at $2.5/h",
        "",
        img("fig1_throughput", "QoS-throughput normalised to the optimum"),
        c["homogeneous"],
        "",
        c["prior"],
        "",
        c["optimum"],
        "",
        md_table1(t),
        "",
        "## 2. Exploration cost",
        "",
        img("fig2_exploration", "evaluations against normalised throughput"),
        c["exploration"],
        "",
        md_table2(t),
        "",
        "## 3. Sensitivity: budget, QoS target, noisy estimates",
        "",
        img("fig3_sensitivity", "sensitivity"),
        c["robust"],
        "",
        "### Budget",
        "",
        md_sweep(t["table3a_budget"], "budget", "$/h"),
        "",
        "### QoS target",
        "",
        md_sweep(t["table3b_qos"], "qos_factor", "QoS x"),
        "",
        "### Noisy estimates (the paper's pool; the dispatcher sees means/quantiles times U[1-x, 1+x] per "
        "(type, size), queries keep their true service times)",
        "",
        md_noise(t),
        "",
        "## 4. Load change",
        "",
        img("fig4_load", "QoS-met fraction and p99 per window under a load change"),
        c.get("load", "No load-change results yet."),
        "",
        f"Schedule (in windows; a window is as long as it takes {s.load_per_window} queries to arrive at 1x -- "
        + (
            ", ".join(f"{r['model']} {r['window_s']:.3g} s" for r in t["table4_load"] if r["policy"] == "kairos")
            or "none run"
        )
        + " -- so that 99% per window is measured on hundreds of queries): 0.5x for 20, 0.9x for 20, burst 1.2x for 10, 0.6x for 20, ramp "
        "0.6x -> 0.95x over 30, 0.95x for 10; 1x = our planned pool's max QPS with kairos dispatch. Recovery = "
        "time from the end of the burst to the first window that has >= 99% met and after which the windows up to "
        "the ramp have >= 99% met together.",
        "",
        md_load(t),
        "",
        "## 5. Dispatch ablation",
        "",
        img("fig5_dispatch", "max QPS over fluid bound per dispatcher"),
        _dispatch_para(t),
        "",
        md_dispatch(t),
        "",
        "## Notes on the method",
        "",
        "- The optimum is the best configuration under our `kairos` dispatcher. Another dispatcher can, on a "
        "given configuration, come out slightly above it (finite runs); values within 5% are noise, not a "
        "contradiction. " + _above_bound(t),
        f"- Kairos+ is capped at {KAIROS_PLUS_CAP} evaluations (a note in the CSV says when the cap was hit).",
        "- A dispatcher that misses QoS for more than 1% of queries even at 0.1% of the fluid bound (p2c, which "
        "sends large queries to slow instances at random) is given max QPS 0 without the full search.",
        "- DeepRecSys's size threshold is re-tuned by hill-climbing at every probed rate (as it tunes online); in "
        "the load change it is tuned once at the 0.9x level.",
        "- The noisy-estimate experiment uses the paper's pool for each model (`kairos.paper.PAPER_CONFIGS`); "
        "the noise-free reference is the dispatch ablation on the same pool and queries.",
        "- Load-change windows hold a fixed number of queries at 1x rather than lasting 1 s, so that the "
        "per-window 99% criterion is measured on hundreds of queries for every model (rm2's windows are "
        "longer than 1 s, ncf's a few ms); times are reported in seconds.",
        "",
    ]
    return "\n".join(lines)


def _dispatch_para(t: dict) -> str:
    rows = t["table5_dispatch"]
    if not rows:
        return ""
    by = _by(rows, "model", "policy")
    ms = models_of(rows)
    k = {m: by[(m, "kairos")]["fraction_of_bound"] for m in ms if (m, "kairos") in by}
    kp = {
        m: by[(m, "kairos")]["max_qps"] / by[(m, "kairos-paper")]["max_qps"]
        for m in ms
        if (m, "kairos") in by and (m, "kairos-paper") in by and by[(m, "kairos-paper")]["max_qps"] > 0
    }
    best_other = {}
    for m in ms:
        vals = [(by[(m, p)]["max_qps"], p) for p in DISPATCHERS if p != "kairos" and (m, p) in by]
        if vals:
            best_other[m] = max(vals)
    wins = sum(
        1 for m in ms if (m, "kairos") in by and m in best_other and by[(m, "kairos")]["max_qps"] >= best_other[m][0]
    )
    return (
        f"On the paper's pools the kairos dispatcher reaches {_ratios(k, '')} of the fluid bound and "
        f"{_ratios(kp)} the published dispatcher's max QPS; it is the best dispatcher on {wins} of {len(ms)} models "
        f"(best other: " + ", ".join(f"{m} {p} {q:.1f} q/s" for m, (q, p) in best_other.items()) + ")."
    )
