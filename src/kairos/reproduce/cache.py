"""A JSON-lines cache of finished cells: one line per cell, keyed by the cell's parameters.

A rerun with the same parameters reads the file and skips every cell already there; a
line cut by an interrupted run is ignored. Appends are single writes (safe from several
processes on one machine).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kairos.dispatch.registry import dispatch_defaults
from kairos.jsonio import json_default

VERSION = 1  # bump when the meaning of a cell's result changes


def cell_key(cell: dict) -> str:
    """The cell's parameters, the format version and a digest of every dispatch policy's
    default settings (a cell's result depends on several policies: a change of any
    one's defaults makes every cell run again rather than report old results)."""
    return json.dumps({"v": VERSION, "dispatch": dispatch_defaults(), **cell}, sort_keys=True, separators=(",", ":"))


class CellCache:
    def __init__(self, path):
        self.path = Path(path)
        self.data: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self.data[row["key"]] = row["result"]
                except (ValueError, KeyError, TypeError):
                    continue

    def get(self, cell: dict):
        return self.data.get(cell_key(cell))

    def __contains__(self, cell: dict) -> bool:
        return cell_key(cell) in self.data

    def put(self, cell: dict, result: dict) -> None:
        key = cell_key(cell)
        self.data[key] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": key, "result": result}, default=json_default) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
