"""User-facing errors: bad input that the CLI reports in one line with exit code 2."""


class KairosInputError(ValueError):
    """Bad user input (a file, a flag, a value). The message names the field and the fix."""


def require_positive(name: str, value: float) -> float:
    """``value`` as a float if it is a finite number > 0, else a KairosInputError naming ``name``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise KairosInputError(f"{name} must be a number > 0, got {value!r}") from None
    if not (x > 0 and x != float("inf")):
        raise KairosInputError(f"{name} must be a finite number > 0, got {value}")
    return x


def require_non_negative(name: str, value: float) -> float:
    """``value`` as a float if it is a finite number >= 0 (not nan), else a KairosInputError naming ``name``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise KairosInputError(f"{name} must be a number >= 0, got {value!r}") from None
    if not 0 <= x < float("inf"):
        raise KairosInputError(f"{name} must be a finite number >= 0, got {value}")
    return x
