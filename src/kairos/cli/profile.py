"""``kairos profile``: measure a real model's latency profile on this machine (needs torch)."""

from __future__ import annotations

import time

import click

from kairos.cli.common import console, emit_json, err_console, json_option
from kairos.errors import KairosInputError
from kairos.models.registry import MODELS
from kairos.profiles.profiler import (
    DEFAULT_REPS,
    DEFAULT_WARMUP,
    check_out_path,
    parse_batches,
    profile_model,
    write_profile_csv,
)


@click.command()
@click.option("--model", required=True, help=f"Model to profile: {', '.join(MODELS)}.")
@click.option(
    "--instance",
    required=True,
    help="Instance-type name to record, e.g. cpu-1t, cpu-2t, gpu (any name; give it a price in "
    "your --prices file to plan with it).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (cuda:N for another GPU).")
@click.option(
    "--threads", type=int, default=None, help="torch.set_num_threads(N) for this run (default: PyTorch's choice)."
)
@click.option(
    "--batches",
    "batches_text",
    default="10:1000:10",
    show_default=True,
    help="Query sizes: a list 10,20,50 and/or inclusive ranges START:STOP:STEP.",
)
@click.option("--reps", type=int, default=DEFAULT_REPS, show_default=True, help="Timed repetitions per size.")
@click.option(
    "--warmup",
    type=int,
    default=DEFAULT_WARMUP,
    show_default=True,
    help="Untimed inferences before each size's repetitions.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the weights and the synthetic inputs.",
)
@click.option(
    "--max-rows",
    type=int,
    default=None,
    help="Cap on embedding-table rows (default 100000, or $KAIROS_MODEL_MAX_ROWS).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV to write (model,instance,batch,rep,infer_ms,load_ms).",
)
@click.option(
    "--append", is_flag=True, help="Add to an existing --out file (rows of the same model and instance are replaced)."
)
@click.option(
    "--interleave",
    is_flag=True,
    help="Cycle through the sizes once per repetition instead of finishing one size at a time "
    "(spreads interference from other work on a shared machine over all sizes).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@json_option
def profile(
    model,
    instance,
    device,
    threads,
    batches_text,
    reps,
    warmup,
    seed,
    max_rows,
    out_path,
    append,
    interleave,
    quiet,
    as_json,
):
    """Measure a model's latency per query size on this machine and write a profile CSV.

    Input preparation (load_ms) is timed apart from inference (infer_ms), as in the
    published data; the file is read unchanged by plan, simulate and serve
    (--profile). Profile one machine several ways (e.g. --threads 1 as cpu-1t and
    --threads 2 as cpu-2t, or --device cuda as gpu) with --append to build a
    heterogeneous catalogue locally.
    """
    model = model.strip().lower()
    if model not in MODELS:
        raise KairosInputError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    batches = parse_batches(batches_text)
    if reps < 1:
        raise KairosInputError(f"--reps must be >= 1, got {reps}")
    if warmup < 0:
        raise KairosInputError(f"--warmup must be >= 0, got {warmup}")
    if threads is not None and threads < 1:
        raise KairosInputError(f"--threads must be >= 1, got {threads}")
    if max_rows is not None and max_rows < 1:
        raise KairosInputError(f"--max-rows must be >= 1, got {max_rows}")
    from kairos.models.registry import check_device

    device = check_device(device)  # no torch or no CUDA: one line, before anything runs
    check_out_path(out_path, append, model, instance.strip(), batches)
    t0 = time.perf_counter()
    total = len(batches) * reps
    if quiet:
        run = profile_model(
            model, instance, device, threads, batches, reps, warmup, seed, max_rows, interleave=interleave
        )
    else:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        ) as bar:
            task = bar.add_task(f"profile {model} on {instance}", total=total)
            run = profile_model(
                model,
                instance,
                device,
                threads,
                batches,
                reps,
                warmup,
                seed,
                max_rows,
                progress=lambda n: bar.advance(task, n),
                interleave=interleave,
            )
    n_rows = write_profile_csv(out_path, run.rows, append=append)
    summary = run.summary()
    summary["out"] = str(out_path)
    summary["rows_in_file"] = n_rows
    summary["total_s"] = round(time.perf_counter() - t0, 3)
    if as_json:
        emit_json(summary)
        return
    _print_table(summary)


def _print_table(s: dict) -> None:
    from rich.table import Table

    t = Table(title=f"kairos profile: {s['model']} as {s['instance']} ({s['device']}, {s['threads']} thread(s))")
    t.add_column("batch", justify="right")
    t.add_column("mean infer_ms", justify="right")
    t.add_column("mean load_ms", justify="right")
    rows = s["per_batch"]
    shown = rows if len(rows) <= 12 else rows[:5] + [None] + rows[-5:]
    for r in shown:
        if r is None:
            t.add_row("...", "", "")
        else:
            t.add_row(str(r["batch"]), f"{r['infer_ms']:.3f}", f"{r['load_ms']:.3f}")
    console.print(t)
    console.print(
        f"{s['reps']} reps x {len(s['batches'])} sizes in {s['elapsed_s']:.1f} s; "
        f"wrote {s['out']} ({s['rows_in_file']} rows)"
    )
