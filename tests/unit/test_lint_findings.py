"""The rule catalogue and how findings state durations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import bdr.lint.runner  # noqa: F401  (registers every rule)
from bdr.lint.findings import RULES, Severity, config_duration, human_duration, rule
from bdr.util.durations import parse_duration


def test_every_rule_has_an_id_a_name_and_an_explanation() -> None:
    assert len(RULES) >= 30
    for rule_id, declared in RULES.items():
        assert re.fullmatch(r"BDR-[A-Z]\d{3}", rule_id)
        assert re.fullmatch(r"[a-z0-9-]+", declared.name)
        assert declared.summary.endswith(".") and len(declared.help) > 40
    assert len({r.name for r in RULES.values()}) == len(RULES)


def test_an_id_cannot_be_declared_twice() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        rule("BDR-R001", "again", Severity.ERROR, "Again.", "Again and again.")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (1.5, "1.5s"), (2, "2s"), (90, "1m 30s"), (3600, "1h"), (3900, "1h 5m"), (86700, "1d 5m"),
     (7 * 86400, "7d")],
)
def test_human_durations_are_exact(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize("seconds", [90, 1800, 3600, 3900, 86400, 86700, 7 * 86400, 365 * 86400])
def test_suggested_settings_parse_back_and_never_shrink(seconds: float) -> None:
    suggested = config_duration(seconds)
    assert parse_duration(suggested) >= seconds
    assert " " not in suggested


def test_a_finding_as_json() -> None:
    finding = RULES["BDR-C001"].finding(Path("/srv/app/docker-compose.yml"), 3, "what", "impact", "fix",
                                        facts={"service": "redis"})
    assert finding.to_dict(Path("/srv/app")) == {
        "id": "BDR-C001", "name": "data-on-writable-layer", "severity": "error", "path": "docker-compose.yml",
        "line": 3, "message": "what", "impact": "impact", "fix": "fix", "facts": {"service": "redis"},
    }
    assert finding.where(Path("/srv/app")) == "docker-compose.yml:3"
