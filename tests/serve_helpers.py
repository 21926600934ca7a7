"""Test helpers for the serving tests: a Prometheus metric lookup, and the server launcher
(:mod:`kairos.serve.launcher`, shared with the serving benchmarks)."""

from __future__ import annotations

from kairos.serve.launcher import ServeProcess as Server, pid_alive  # noqa: F401


def metric(text: str, name: str, labels: str = "") -> float:
    key = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(key)
