"""``kairos reproduce``: the paper's evaluation in one command (flags and progress bars only)."""

from __future__ import annotations

import click

from kairos.cli.common import console, emit_json, err_console, json_option
from kairos.errors import KairosInputError
from kairos.reproduce.experiments import settings_for
from kairos.reproduce.run import reproduce as run_reproduce


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="results/paper",
    show_default=True,
    help="Folder for tables (md, csv), figures (png), results.md and the cache of finished cells.",
)
@click.option(
    "--quick",
    is_flag=True,
    help="Small settings (rm2 and ncf, 3,000 queries, fewer budgets and sweeps): a minute or two.",
)
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Latency profile CSV instead of the built-in AWS catalogue (models need the paper's names).",
)
@click.option("--jobs", type=int, default=1, show_default=True, help="Cells run in this many processes.")
@click.option(
    "--models", default=None, help="Comma-separated subset of models (default: all five, or rm2,ncf with --quick)."
)
@click.option(
    "--docs",
    "docs_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a copy of results.md here (figure links relative to it), e.g. docs/results.md.",
)
@click.option(
    "--report-only", is_flag=True, help="Simulate nothing: write the outputs from the finished cells in the cache."
)
@json_option
def reproduce(out_dir, quick, profile_path, jobs, models, docs_path, report_only, as_json):
    """Reproduce the Kairos paper's evaluation: tables, figures and results.md.

    Compares Kairos with the best homogeneous pool, RIBBON, DeepRecSys, Clockwork and the
    optimum; sensitivity to budget, QoS target and noisy estimates; load changes; a
    dispatch ablation. Resumable: finished cells are cached under OUT/cache.
    """
    if jobs < 1:
        raise KairosInputError(f"--jobs must be >= 1, got {jobs}")
    from kairos.paper import PAPER_QOS_MS

    sel = None
    if models is not None:
        sel = tuple(m.strip() for m in models.split(",") if m.strip())
        bad = [m for m in sel if m not in PAPER_QOS_MS]
        if bad or not sel:
            raise KairosInputError(f"--models: {', '.join(bad) or '(empty)'} not among {', '.join(PAPER_QOS_MS)}")
    s = settings_for(quick, profile_path, sel)
    if profile_path is not None:
        from kairos.reproduce.experiments import catalogue

        missing = [m for m in s.models if m not in catalogue(str(profile_path)).profiles]
        if missing:
            raise KairosInputError(f"--profile has no profile for {', '.join(missing)}; pass --models")
    argv = (
        ["kairos reproduce", f"--out {out_dir}"]
        + (["--quick"] if quick else [])
        + ([f"--profile {profile_path}"] if profile_path else [])
        + [f"--jobs {jobs}"]
        + ([f"--models {models}"] if models else [])
        + (["--report-only"] if report_only else [])
    )
    if report_only:  # nothing simulated: no progress bars
        res = run_reproduce(s, out_dir, jobs, None, docs_path, " ".join(argv), report_only=True)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description:14s}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        ) as bars:
            tasks: dict = {}

            def progress(stage, done, total):
                if stage not in tasks:
                    tasks[stage] = bars.add_task(stage, total=max(total, 1))
                bars.update(tasks[stage], completed=done if total else 1)

            res = run_reproduce(s, out_dir, jobs, progress, docs_path, " ".join(argv))
    if as_json:  # what was written, for scripts (the progress bars went to stderr)
        emit_json(
            {
                "out": str(res.out),
                "wall_s": round(res.wall_s, 1),
                "files": res.files,
                "figures": res.figures,
                "figures_skipped": res.figures_skipped,
                "results_page": str(docs_path) if docs_path else None,
            }
        )
        return
    console.print(f"wrote {len(res.files)} files to {res.out} in {res.wall_s:.1f} s")
    if res.figures_skipped:
        console.print("figures skipped: matplotlib is not installed (pip install 'kairos-serve[reproduce]')")
    else:
        console.print(f"figures: {', '.join(f.split('/')[-1] for f in res.figures)}")
    if docs_path:
        console.print(f"results page: {docs_path}")
