"""What ``bdr lint`` reports: findings of rules, each tied to a file and line.

A *rule* is one thing that can be wrong with the configuration that protects the data
(``BDR-R001``: a crash of Redis loses more than the RPO allows). A *finding* is one
occurrence of a rule: where it is (file and line), what was found, what it means in
recovery terms (how much data a crash or a total loss would cost, or how long the service
stays down, against the targets of ``bdr.yaml``), and how to fix it.

Rules register themselves in :data:`RULES` where their check lives, so the catalogue
(``bdr lint --list-rules``, the SARIF ``rules`` array) is always complete.

Severities: ``error`` breaks a recovery target or the written policy (``bdr lint`` exits 1),
``warning`` is a risk that does not break a target yet, ``info`` is worth knowing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse: error 2, warning 1, info 0."""
        return {Severity.ERROR: 2, Severity.WARNING: 1, Severity.INFO: 0}[self]


@dataclass(frozen=True, slots=True)
class Rule:
    """One check of the catalogue: a stable id, a default severity and what it is about."""

    id: str
    name: str
    severity: Severity
    summary: str
    help: str
    tags: tuple[str, ...] = ()

    def finding(
        self,
        path: Path,
        line: int | None,
        message: str,
        impact: str,
        fix: str,
        *,
        severity: Severity | None = None,
        facts: Mapping[str, Any] | None = None,
    ) -> Finding:
        """A finding of this rule (at its default severity unless ``severity`` is given)."""
        return Finding(
            rule=self.id, severity=severity or self.severity, path=path, line=line, message=message,
            impact=impact, fix=fix, facts=dict(facts or {}),
        )


RULES: dict[str, Rule] = {}
"""Every rule, by id, in the order they were declared."""


def rule(id: str, name: str, severity: Severity, summary: str, help: str, tags: tuple[str, ...] = ()) -> Rule:
    """Declare a rule and register it in :data:`RULES` (ids must be unique)."""
    if id in RULES:
        raise ValueError(f"rule {id} is declared twice")
    declared = Rule(id, name, severity, summary, " ".join(help.split()), tags)
    RULES[id] = declared
    return declared


@dataclass(frozen=True, slots=True)
class Finding:
    """One occurrence of a rule: where, what, what it costs in RPO/RTO terms, and the fix.

    ``facts`` holds the numbers behind the message (windows and targets in seconds, the data
    type, the source) for ``--json``. Secret values never appear in a finding, only the name
    of the variable or directive that holds one.
    """

    rule: str
    severity: Severity
    path: Path
    line: int | None
    message: str
    impact: str
    fix: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    def where(self, base: Path | None = None) -> str:
        """``redis.conf:12`` (relative to ``base`` when the file is below it)."""
        shown = display_path(self.path, base)
        return f"{shown}:{self.line}" if self.line else shown

    def sort_key(self) -> tuple[str, int, int, str]:
        return (str(self.path), self.line or 0, -self.severity.rank, self.rule)

    def to_dict(self, base: Path | None = None) -> dict[str, Any]:
        known = RULES.get(self.rule)
        return {
            "id": self.rule,
            "name": known.name if known else None,
            "severity": str(self.severity),
            "path": display_path(self.path, base),
            "line": self.line,
            "message": self.message,
            "impact": self.impact,
            "fix": self.fix,
            "facts": dict(self.facts),
        }


def display_path(path: Path, base: Path | None = None) -> str:
    """``path`` relative to ``base`` when it is below it, with forward slashes."""
    if base is not None:
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def human_duration(seconds: float) -> str:
    """An exact, short duration for findings: ``2s``, ``12m``, ``1h 5m``, ``1d 5m``, ``1.5s``."""
    if seconds < 0:
        return "-" + human_duration(-seconds)
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    remaining = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0s"


def config_duration(seconds: float) -> str:
    """A duration as bdr.yaml accepts it (one unit, rounded up): ``1h``, ``65m``, ``1445m``, ``90s``."""
    whole = int(-(-seconds // 1))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0 and whole >= size:
            return f"{whole // size}{unit}"
    return f"{int(-(-whole // 60))}m" if whole >= 600 else f"{whole}s"
