"""Entry point: ``kairos <command>``. Sub-commands are registered in ``COMMANDS``."""

from __future__ import annotations

import importlib
import sys

import click

from kairos import __version__
from kairos.errors import KairosInputError

# name -> "module:attribute" of a click command (imported lazily: `kairos --help` stays fast
# and optional extras such as torch or ray are only imported by the commands that use them)
COMMANDS = {
    "simulate": "kairos.cli.simulate:simulate",
    "plan": "kairos.cli.plan:plan",
    "serve": "kairos.cli.serve:serve",
    "loadgen": "kairos.cli.loadgen:loadgen",
    "profile": "kairos.cli.profile:profile",
    "reproduce": "kairos.cli.reproduce:reproduce",
}


# click >= 8.2 raises this for `kairos` alone (its message is the help); () matches nothing before
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        mod, attr = target.split(":")
        return getattr(importlib.import_module(mod), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kairos")
def cli():
    """Kairos: plan, dispatch, serve and simulate ML inference on heterogeneous cloud instances."""


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="kairos", standalone_mode=False)
    except KairosInputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except _NO_ARGS_IS_HELP as exc:  # `kairos` alone: the help, as click shows it
        click.echo(exc.format_message(), err=True)
        sys.exit(2)
    except click.ClickException as exc:  # click's own checks (types, choices, unknown flags): one line too
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        msg = " ".join(exc.format_message().split())
        click.echo(f"error: {msg}{hint}", err=True)
        sys.exit(2 if exc.exit_code in (1, 2) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:  # a path the user gave that cannot be read or written
        where = f" {exc.filename!r}" if exc.filename else ""
        click.echo(f"error: cannot use{where}: {exc.strerror or exc}; check the path and its permissions", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
