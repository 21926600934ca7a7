"""Structured logs: one JSON object per line on stderr (``event`` plus fields)."""

from __future__ import annotations

import json
import sys
import time


class EventLog:
    """Minimal JSON-lines logger: ``log.event("worker_died", instance="g4dn.xlarge#0")``."""

    def __init__(self, stream=None, quiet: bool = False, component: str = "gateway"):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.component = component

    def event(self, event: str, level: str = "info", **fields) -> None:
        if self.quiet and level == "info":
            return
        rec = {"ts": round(time.time(), 6), "level": level, "component": self.component, "event": event}
        rec.update(fields)
        try:
            self.stream.write(json.dumps(rec, default=str) + "\n")
            self.stream.flush()
        except (ValueError, OSError):  # stream closed at exit
            pass
