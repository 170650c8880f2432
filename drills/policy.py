"""The targets a drill is held to: read from bdr.yaml (``--dr-policy`` for another file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bdr.config import Config, load_config
from bdr.report.provenance import policy_fingerprint, policy_targets


@dataclass(frozen=True, slots=True)
class Policy:
    """The policy file in force, and its fingerprint for the evidence."""

    config: Config
    path: str
    sha256: str
    git_commit: str = ""

    def rto(self, name: str) -> float | None:
        """The RTO target ``name`` in seconds; None when the policy defines none (shown as such)."""
        value = self.config.targets.rto.get(name)
        return None if value is None else float(value)

    def rpo(self, data_type: str) -> float | None:
        value = self.config.targets.rpo.get(data_type)
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return policy_targets(self.config)


def load_policy(path: str | None) -> Policy:
    """``path``, else ./bdr.yaml, else the embedded defaults (the runbook's targets)."""
    config = load_config(path)
    facts = policy_fingerprint(config)
    return Policy(config, facts["policy_file"], facts["policy_sha256"], facts["policy_git_commit"])
