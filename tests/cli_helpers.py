"""Running ``kairos`` in the test process, and checking its one-line errors."""

from __future__ import annotations

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
