"""A JSON-lines cache of finished cells: one line per cell, keyed by the cell's parameters and
the dispatch policies it uses.

A rerun with the same parameters reads the file and skips every cell already there; a
line cut by an interrupted run is ignored. Appends are single writes (safe from several
processes on one machine).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from kairos.dispatch import registry
from kairos.jsonio import json_default

VERSION = 1  # bump when the meaning of a cell's result changes


def cell_key(cell: dict, fingerprints: Iterable[str] = ()) -> str:
    """The cell's parameters, the format version and the fingerprints
    (:func:`~kairos.dispatch.registry.policy_fingerprint`: name and settings) of the dispatch
    policies the cell uses: a change of one policy's defaults runs again the cells that use
    that policy, and only those."""
    return json.dumps({"v": VERSION, "policies": sorted(fingerprints), **cell}, sort_keys=True, separators=(",", ":"))


class CellCache:
    """Finished cells in the JSON-lines file ``path``; ``uses(cell)`` names the dispatch policies
    a cell's result depends on (part of its key)."""

    def __init__(self, path, uses: Callable[[dict], Iterable[str]] = lambda cell: ()):
        self.path = Path(path)
        self.uses = uses
        self._prints: dict[str, str] = {}  # policy name -> fingerprint
        self.data: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self.data[row["key"]] = row["result"]
                except (ValueError, KeyError, TypeError):
                    continue

    def key(self, cell: dict) -> str:
        prints = []
        for name in self.uses(cell):
            if name not in self._prints:
                self._prints[name] = registry.policy_fingerprint(name)
            prints.append(self._prints[name])
        return cell_key(cell, prints)

    def get(self, cell: dict):
        return self.data.get(self.key(cell))

    def __contains__(self, cell: dict) -> bool:
        return self.key(cell) in self.data

    def put(self, cell: dict, result: dict) -> None:
        key = self.key(cell)
        self.data[key] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": key, "result": result}, default=json_default) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
