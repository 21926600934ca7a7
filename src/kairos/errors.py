"""User-facing errors: bad input that the CLI reports in one line with exit code 2."""


class KairosInputError(ValueError):
    """Bad user input (a file, a flag, a value). The message names the field and the fix."""
