"""One call that runs every experiment and writes tables, figures and ``results.md``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kairos.errors import KairosInputError
from kairos.reproduce import figures, report
from kairos.reproduce.experiments import Settings, cached_results, main_cells, run_all, sensitivity_cells


@dataclass
class Outcome:
    out: Path
    wall_s: float
    tables: dict
    figures: list[str] = field(default_factory=list)
    figures_skipped: bool = False
    files: list[str] = field(default_factory=list)


def write_outputs(s: Settings, results: dict, out: Path, meta: dict, docs_path=None) -> Outcome:
    """Tables (md + csv), figures (if matplotlib is there), results.md; docs_path: a copy of
    results.md whose figure links point at ``out`` relative to the copy's folder."""
    out = Path(out)
    t = report.tables(results)
    report.write_tables(t, out)
    figs, skipped = [], not figures.available()
    if not skipped:
        figs = figures.draw_all(t, out)
    (out / "results.md").write_text(report.results_markdown(t, s, "", figs, meta))
    if docs_path is not None:
        docs_path = Path(docs_path)
        docs_path.parent.mkdir(parents=True, exist_ok=True)
        rel = _relpath(out, docs_path.parent)
        docs_path.write_text(report.results_markdown(t, s, rel + "/", figs, meta))
    (out / "meta.json").write_text(json.dumps({**meta, "settings": s.to_dict()}, indent=1, default=str))
    files = sorted(str(p) for p in out.iterdir() if p.is_file())
    return Outcome(out, meta.get("wall_s", 0.0), t, figs, skipped, files)


def _describe(cells: list[dict]) -> list[str]:
    groups: dict[str, list[str]] = {}
    for c in cells:
        if c["kind"] == "plan":
            what = (
                f"plan cells at ${c['budget']:g}/h"
                if c["qos_factor"] == 1.0
                else f"plan cells at {c['qos_factor']:g}x QoS"
            )
        else:
            what = f"noise {100 * c['noise']:.0f}% draw {c['draw']}" if c["noise"] else "dispatch ablation"
        groups.setdefault(what, [])
        if c["model"] not in groups[what]:
            groups[what].append(c["model"])
    return [f"{k} ({', '.join(v)})" for k, v in groups.items()]


def _relpath(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(Path(target).resolve(), Path(start).resolve())


def reproduce(
    s: Settings,
    out,
    jobs: int = 1,
    progress: Callable[[str, int, int], None] | None = None,
    docs_path=None,
    command: str = "kairos reproduce",
    report_only: bool = False,
) -> Outcome:
    """Run (or, with ``report_only``, just read back from the cache) and write every output."""
    t0 = time.perf_counter()
    out = Path(out)
    if report_only:
        results = cached_results(s, out)
        if not any(results.values()):
            raise KairosInputError(
                f"--report-only: no finished cells for these settings in {out / 'cache'}; run without "
                f"--report-only first (or give the --quick/--models of the run that filled it)"
            )
    else:
        results = run_all(s, out, jobs, progress)
    wall = time.perf_counter() - t0
    expected = main_cells(s) + sensitivity_cells(s)
    got = {json.dumps(c, sort_keys=True) for k, v in results.items() if k != "load" for c, _ in v}
    missing = [c for c in expected if json.dumps(c, sort_keys=True) not in got]
    status = (
        ""
        if not missing
        else (
            f"Partial: {len(expected) - len(missing)} of {len(expected)} plan/dispatch cells finished; missing: "
            + "; ".join(_describe(missing))
            + " (rerun the same command to continue)."
        )
    )
    meta = {
        "command": command,
        "wall_s": round(wall, 1),
        "jobs": jobs,
        "status": status,
        "cells": {k: len(v) for k, v in results.items()},
    }
    return write_outputs(s, results, out, meta, docs_path)
