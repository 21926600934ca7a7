"""Plan files: a chosen configuration written by ``kairos plan --emit`` and read by
``kairos simulate --plan`` and ``kairos serve --plan`` (JSON, or YAML if PyYAML is
installed). Required keys: ``model``, ``qos_ms``, ``config`` ({type: count}); any
other keys (method, budget, cost_per_hour, predicted_qps, ...) are kept as metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kairos.errors import KairosInputError, require_positive


@dataclass
class PlanFile:
    model: str
    qos_ms: float
    config: dict[str, int]
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"model": self.model, "qos_ms": self.qos_ms, "config": dict(self.config), **self.meta}


def write_plan(plan: PlanFile, path, fmt: str = "json") -> None:
    doc = plan.to_dict()
    if fmt == "yaml":
        try:
            import yaml
        except ImportError:
            raise KairosInputError("--format yaml needs PyYAML (pip install pyyaml); use --format json") from None
        text = yaml.safe_dump(doc, sort_keys=False)
    elif fmt == "json":
        text = json.dumps(doc, indent=2) + "\n"
    else:
        raise KairosInputError(f"--format must be json or yaml, got {fmt!r}")
    Path(path).write_text(text)


def load_plan(path) -> PlanFile:
    path = Path(path)
    if not path.exists():
        raise KairosInputError(f"plan file not found: {path}")
    text = path.read_text()
    doc = None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        try:
            import yaml

            doc = yaml.safe_load(text)
        except ImportError:
            raise KairosInputError(f"{path}: not JSON (install PyYAML to read YAML plans)") from None
        except Exception as exc:  # yaml.YAMLError
            raise KairosInputError(f"{path}: neither valid JSON nor YAML ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise KairosInputError(f"{path}: a plan must be an object with model, qos_ms and config")
    missing = [k for k in ("model", "qos_ms", "config") if k not in doc]
    if missing:
        raise KairosInputError(f"{path}: plan is missing {', '.join(missing)}")
    cfg = doc["config"]
    if not isinstance(cfg, dict) or not cfg:
        raise KairosInputError(f"{path}: plan 'config' must be a non-empty {{type: count}} object")
    config = {}
    for k, v in cfg.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise KairosInputError(f"{path}: plan config count for {k!r} must be a non-negative integer")
        if v:
            config[str(k)] = v
    if not config:
        raise KairosInputError(f"{path}: plan config has no instances")
    try:
        qos = float(doc["qos_ms"])
    except (TypeError, ValueError):
        raise KairosInputError(f"{path}: plan qos_ms must be a number") from None
    require_positive(f"{path}: plan qos_ms", qos)
    meta = {k: v for k, v in doc.items() if k not in ("model", "qos_ms", "config")}
    return PlanFile(str(doc["model"]), qos, config, meta)
