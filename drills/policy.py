"""The targets a drill is held to: read from bdr.yaml (``--dr-policy`` for another file)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdr.config import Config, load_config


@dataclass(frozen=True, slots=True)
class Policy:
    """The policy file in force, and its fingerprint for the evidence."""

    config: Config
    path: str
    sha256: str

    def rto(self, name: str) -> float:
        return float(self.config.targets.rto[name])

    def rpo(self, data_type: str) -> float:
        return float(self.config.targets.rpo[data_type])

    def to_dict(self) -> dict[str, Any]:
        return {"rto": dict(self.config.targets.rto), "rpo": dict(self.config.targets.rpo)}


def load_policy(path: str | Path | None) -> Policy:
    """``path``, else ./bdr.yaml, else the embedded defaults (the runbook's targets)."""
    config = load_config(path)
    if config.path is not None:
        raw = Path(config.path).read_bytes()
        return Policy(config, str(config.path), hashlib.sha256(raw).hexdigest())
    canonical = json.dumps({"rto": dict(config.targets.rto), "rpo": dict(config.targets.rpo)}, sort_keys=True)
    return Policy(config, "embedded defaults", hashlib.sha256(canonical.encode()).hexdigest())
