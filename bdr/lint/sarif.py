"""SARIF 2.1.0 output, for code-scanning UIs (GitHub code scanning, GitLab, Azure DevOps).

One run of the tool ``bdr`` with the whole rule catalogue (id, name, descriptions, default
level, help) and one result per finding: rule id and index, level (``error``, ``warning``,
``note`` for info), the message (what, what it costs, how to fix), and the file and line
relative to the checkout root (``%SRCROOT%``), which is how GitHub places annotations on
the pull request. Notes about what lint could not check become tool notifications.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bdr import __version__
from bdr.lint.findings import RULES, Finding, Severity
from bdr.lint.runner import LintReport

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
SECURITY_SEVERITY = {Severity.ERROR: "8.0", Severity.WARNING: "5.0", Severity.INFO: "2.0"}


def _uri(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def _rule_entry(rule_id: str) -> dict[str, Any]:
    rule = RULES[rule_id]
    properties: dict[str, Any] = {"tags": ["reliability", "backup", *rule.tags]}
    if "security" in rule.tags:
        properties["security-severity"] = SECURITY_SEVERITY[rule.severity]
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.name.split("-")),
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.help},
        "help": {"text": rule.help, "markdown": f"**{rule.summary}**\n\n{rule.help}"},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": properties,
    }


def _result(finding: Finding, index: dict[str, int], root: Path) -> dict[str, Any]:
    location: dict[str, Any] = {"artifactLocation": {"uri": _uri(finding.path, root)}}
    if not location["artifactLocation"]["uri"].startswith("file:"):
        location["artifactLocation"]["uriBaseId"] = "%SRCROOT%"
    location["region"] = {"startLine": finding.line or 1}
    text = f"{finding.message}. {finding.impact} Fix: {finding.fix}"
    return {
        "ruleId": finding.rule,
        "ruleIndex": index[finding.rule],
        "level": LEVELS[finding.severity],
        "message": {"text": text},
        "locations": [{"physicalLocation": location}],
        "properties": {"facts": dict(finding.facts)},
    }


def to_sarif(report: LintReport, root: Path) -> dict[str, Any]:
    """The SARIF log of ``report``, with paths relative to ``root`` (the checkout)."""
    rule_ids = sorted(RULES)
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    run: dict[str, Any] = {
        "tool": {"driver": {
            "name": "bdr",
            "fullName": "bdr lint: backup and disaster-recovery configuration checks",
            "version": __version__,
            "semanticVersion": __version__,
            "rules": [_rule_entry(r) for r in rule_ids],
        }},
        "originalUriBaseIds": {"%SRCROOT%": {"uri": root.resolve().as_uri() + "/"}},
        "results": [_result(f, index, root) for f in report.findings],
        "invocations": [{
            "executionSuccessful": True,
            "toolExecutionNotifications": [
                {"level": "note", "message": {"text": note}} for note in report.notes
            ],
        }],
        "columnKind": "unicodeCodePoints",
    }
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
