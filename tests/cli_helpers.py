"""Running ``kairos`` in the test process, and checking its one-line errors."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from kairos.cli.main import main


def run_cli(capsys, *args):
    """``kairos ARGS`` in this process: (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    """Exit code 2, no traceback, one ``error: ...`` line on stderr containing every needle."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in needles:
        assert w in lines[0], err


@dataclass
class Ran:
    """What ``kairos ARGS`` did, as :class:`subprocess.CompletedProcess` reports it."""

    returncode: int
    stdout: str
    stderr: str


def run_kairos(*args) -> Ran:
    """``kairos ARGS`` in this process (no interpreter start-up per call), its output captured."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Ran(code, out.getvalue(), err.getvalue())
