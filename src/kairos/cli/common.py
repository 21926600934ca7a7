"""Options and helpers shared by the sub-commands: catalogue loading, output, errors."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console

from kairos.elastic.controller import ControllerSettings
from kairos.errors import KairosInputError, require_positive
from kairos.jsonio import json_default
from kairos.paper import PAPER_QOS_MS
from kairos.profiles.catalogue import Catalogue, load_catalogue

console = Console(stderr=False)
err_console = Console(stderr=True)


def profile_options(f):
    """--model, --profile, --prices."""
    f = click.option(
        "--prices",
        type=click.Path(dir_okay=False),
        default=None,
        help="CSV of instance,usd_per_hour (default: the built-in AWS prices).",
    )(f)
    f = click.option(
        "--profile",
        "profile_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Latency profile CSV/CSV.gz (model,instance,batch and latency_ms or "
        "infer_ms+load_ms). Default: the built-in AWS catalogue.",
    )(f)
    f = click.option(
        "--model",
        default="rm2",
        show_default=True,
        help="Model whose profile to use (rm2, wnd, mtwnd, dien, ncf in the built-in catalogue).",
    )(f)
    return f


def workload_options(f):
    """--workload, --queries, --seed."""
    f = click.option(
        "--seed",
        default=0,
        show_default=True,
        type=click.IntRange(min=0),
        help="Random seed: same seed, same queries and arrivals.",
    )(f)
    f = click.option(
        "--queries", default=20000, show_default=True, type=int, help="Number of simulated queries per run."
    )(f)
    f = click.option(
        "--workload",
        default="deeprecsys",
        show_default=True,
        help="Query-size mix: deeprecsys, ribbon, fixed:N, or a file of sizes (one per line).",
    )(f)
    return f


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")(f)


def get_catalogue(profile_path, prices) -> Catalogue:
    return load_catalogue(profile_path, prices)


def resolve_qos(model: str, qos_ms: float | None) -> float:
    if qos_ms is None:
        if model in PAPER_QOS_MS:
            return PAPER_QOS_MS[model]
        raise KairosInputError(f"--qos-ms is required for model {model!r} (no paper default)")
    return require_positive("--qos-ms", qos_ms)


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=None, default=json_default))


def fail(message: str) -> None:
    """One line on stderr, exit code 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def given_options(ctx: click.Context | None = None) -> set[str]:
    """Names of the parameters the user set (on the command line or in the environment), as
    opposed to those left at their defaults: an option that does not apply is refused only
    when it was actually given."""
    from click.core import ParameterSource

    ctx = ctx or click.get_current_context()
    unset = (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    return {name for name in ctx.params if ctx.get_parameter_source(name) not in unset}


_SETTINGS = ControllerSettings()  # the controller's defaults, shown as the options' defaults

# The elastic controller's settings as options (`kairos simulate --autoscale` and `kairos serve
# --autoscale`), defaults from ControllerSettings; read them back with controller_settings().
CONTROLLER_OPTIONS = [
    click.option(
        "--interval-s",
        type=float,
        default=_SETTINGS.interval_s,
        show_default=True,
        help="With --autoscale: seconds between the controller's decisions.",
    ),
    click.option(
        "--window-s",
        type=float,
        default=_SETTINGS.window_s,
        show_default=True,
        help="With --autoscale: the forecast's level is the highest rate over this past window.",
    ),
    click.option(
        "--headroom",
        type=float,
        default=_SETTINGS.headroom,
        show_default=True,
        help="With --autoscale: plan for the forecast x (1 + headroom).",
    ),
    click.option(
        "--scale-down-after-s",
        type=float,
        default=_SETTINGS.scale_down_after_s,
        show_default=True,
        help="With --autoscale: a cheaper pool must suffice this long before instances are drained.",
    ),
    click.option(
        "--down-margin",
        type=float,
        default=_SETTINGS.down_margin,
        show_default=True,
        help="With --autoscale: ... and be cheaper by at least this fraction of the pool's cost.",
    ),
    click.option(
        "--min-rate-qps",
        type=float,
        default=_SETTINGS.min_rate_qps,
        show_default=True,
        help="With --autoscale: never plan for less than this rate (a floor pool through lulls).",
    ),
    click.option(
        "--types",
        "types_text",
        default=None,
        help="With --autoscale: comma-separated instance types the controller may rent (default: "
        "every type with a profile and a price).",
    ),
]


def controller_settings(**values) -> ControllerSettings:
    """ControllerSettings from the options of the same names; its own checks, reported with the flag's name."""
    try:
        return ControllerSettings(**values)
    except ValueError as exc:
        name, _, rest = str(exc).partition(" ")
        raise KairosInputError(f"--{name.replace('_', '-')} {rest}") from None
