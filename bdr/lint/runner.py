"""One ``bdr lint`` run: find the files, load the policy, run every check, collect the report.

The policy is the ``bdr.yaml`` of ``--config`` / ``$BDR_CONFIG`` / the current directory,
else the one bdr.yaml among the linted files, else the embedded defaults (then the backup
schedule is unknown and only what the files themselves say is checked). A policy file that
does not load is a finding (``BDR-P000``), not a crash, so CI shows it like any other.

With ``changed_since`` every check still sees every file (a compose file is read with the
redis.conf it mounts), but only findings in the files changed since the ref are reported,
all of them when bdr.yaml itself changed (its targets apply to everything). A deleted
redis.conf or compose file is a finding of its own.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdr.config import CONFIG_ENV, DEFAULT_CONFIG_NAME, Config, find_config, load_config
from bdr.errors import ConfigError, UsageError
from bdr.lint import compose, grafana, policy, prometheus, redis_rules, secrets
from bdr.lint.changes import Change, ChangeStatus, changes_since
from bdr.lint.context import CHECKS, LintContext, Policy, PolicyProblem
from bdr.lint.files import ConfigKind, classify, collect
from bdr.lint.findings import RULES, Finding, Severity, display_path, rule
from bdr.lint.windows import Exposure, all_exposures
from bdr.lint.yamlmarks import YamlError, load_marked

logger = logging.getLogger(__name__)

CHECK_MODULES = (compose, redis_rules, policy, secrets, grafana, prometheus)
"""Imported for their checks and rules (each registers itself)."""

DELETED = rule(
    "BDR-G001", "config-file-deleted", Severity.WARNING, "A configuration file was deleted since the base ref.",
    "A deleted redis.conf or compose file changes how the services start: Redis falls back to its defaults "
    "(snapshots only, no AOF) and volumes may no longer be mounted.",
)


@dataclass(frozen=True, slots=True)
class LintOptions:
    """What to lint and how (the command-line options of ``bdr lint``)."""

    paths: tuple[Path, ...] = ()
    crontabs: tuple[Path, ...] = ()
    unit_dirs: tuple[Path, ...] = ()
    """Directories of systemd units whose backup timers are the installed schedule."""
    config_path: str | None = None
    changed_since: str | None = None
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    backup_durations: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LintReport:
    """The outcome: the files read, the findings, the worst-case windows, and what was not checked."""

    cwd: Path
    files: tuple[Path, ...]
    findings: tuple[Finding, ...]
    exposures: tuple[Exposure, ...]
    notes: tuple[str, ...]
    policy: str
    policy_path: Path | None = None
    changed_since: str | None = None
    changed: tuple[Change, ...] = ()

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def failed(self, fail_on: Severity = Severity.ERROR) -> bool:
        """True when a finding is at least as severe as ``fail_on`` (``bdr lint`` exits 1)."""
        return any(f.severity.rank >= fail_on.rank for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.failed(),
            "policy": self.policy,
            "changed_since": self.changed_since,
            "files": [display_path(p, self.cwd) for p in self.files],
            "summary": {str(s): self.count(s) for s in Severity},
            "findings": [f.to_dict(self.cwd) for f in self.findings],
            "windows": [e.to_dict(self.cwd) for e in self.exposures],
            "notes": list(self.notes),
        }


def run_lint(options: LintOptions, cwd: Path | None = None) -> LintReport:
    """Lint the configuration and return the report (raises only for bad usage or a missing --config)."""
    cwd = (cwd or Path.cwd()).resolve()
    files = collect(list(options.paths), cwd, options.exclude)
    policy_path = find_config(options.config_path) if options.config_path else _policy_path(files, cwd)
    loaded, problem = _load_policy(policy_path)
    config = loaded.config if loaded else Config()
    if config.lint.exclude:
        files = collect(list(options.paths), cwd, (*options.exclude, *config.lint.exclude))
    if loaded is not None and loaded.path is not None:
        files[loaded.path.resolve()] = ConfigKind.POLICY
    files = _outside_repository(files, config if loaded else None)

    changed: list[Change] = []
    if options.changed_since:
        changed = [c for c in changes_since(options.changed_since, cwd) if classify(c.path) is not None]

    crontabs = tuple(p if p.is_absolute() else cwd / p for p in options.crontabs)
    for path in crontabs:
        if not path.is_file():
            raise UsageError(detail=f"--crontab {path}: no such file")
    unit_dirs = tuple(p if p.is_absolute() else cwd / p for p in options.unit_dirs)
    for path in unit_dirs:
        if not path.exists():
            raise UsageError(detail=f"--systemd {path}: no such directory (the units are in /etc/systemd/system)")
    ctx = LintContext(
        cwd=cwd, files=files, policy=loaded, policy_found=policy_path is not None, policy_problem=problem,
        crontabs=crontabs, unit_dirs=unit_dirs, duration_overrides=dict(options.backup_durations),
    )
    findings = [f for check in CHECKS for f in check(ctx)]
    ignored = {*options.ignore, *config.lint.ignore}
    for unknown in sorted(ignored - set(RULES)):
        ctx.note(f"ignore names an unknown rule {unknown!r} (see bdr lint --list-rules)")
    findings = [f for f in findings if f.rule not in ignored]
    shown_files = tuple(sorted(files))
    if options.changed_since:
        findings, shown_files = _only_changed(ctx, findings, changed, options.changed_since)
    findings.sort(key=Finding.sort_key)
    return LintReport(
        cwd=cwd, files=shown_files, findings=tuple(_dedupe(findings)), exposures=tuple(all_exposures(ctx)),
        notes=tuple(ctx.notes), policy=str(loaded.path) if loaded and loaded.path else "embedded defaults",
        policy_path=loaded.path if loaded else None,
        changed_since=options.changed_since, changed=tuple(changed),
    )


INSTALLED_UNIT_DIRS = (Path("/etc/systemd/system"),)
INSTALLED_CRONTABS = (Path("/etc/crontab"), Path("/etc/cron.d"))


def installed_schedule(unit_dirs: tuple[Path, ...] = INSTALLED_UNIT_DIRS,
                       crontabs: tuple[Path, ...] = INSTALLED_CRONTABS) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """Where this host's schedule is installed: unit directories and crontab files that exist (``--installed``)."""
    dirs = tuple(d for d in unit_dirs if d.is_dir())
    files: list[Path] = []
    for path in crontabs:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
    return dirs, tuple(files)


def _policy_path(files: Mapping[Path, ConfigKind], cwd: Path) -> Path | None:
    """``$BDR_CONFIG``, else ``bdr.yaml`` in ``cwd``, else the one bdr.yaml among the linted files."""
    if os.environ.get(CONFIG_ENV):
        found = find_config(os.environ[CONFIG_ENV])
        return found.resolve() if found else None
    if (cwd / DEFAULT_CONFIG_NAME).is_file():
        return cwd / DEFAULT_CONFIG_NAME
    candidates = [p for p, k in files.items() if k == ConfigKind.POLICY]
    if len(candidates) > 1:
        shown = ", ".join(display_path(p, cwd) for p in candidates)
        raise UsageError(detail=f"several policy files ({shown}): say which one with --config")
    return candidates[0] if candidates else None


def _load_policy(path: Path | None) -> tuple[Policy | None, PolicyProblem | None]:
    if path is None:
        return Policy(Config()), None
    try:
        config = load_config(path)
    except ConfigError as exc:
        line = exc.fields.get("line")
        return None, PolicyProblem(path.resolve(), line if isinstance(line, int) else None, exc.message)
    try:
        doc = load_marked(path)
    except YamlError:
        doc = None
    return Policy(config, path.resolve(), doc), None


def _outside_repository(files: dict[Path, ConfigKind], config: Config | None) -> dict[Path, ConfigKind]:
    """Leave out copies of configuration inside the backup repository (config backups)."""
    if config is None or "://" in config.repository:
        return files
    repository = config.repository_path().resolve()
    return {p: k for p, k in files.items() if repository not in p.resolve().parents}


def _only_changed(ctx: LintContext, findings: list[Finding], changed: list[Change],
                  ref: str) -> tuple[list[Finding], tuple[Path, ...]]:
    present = {c.path.resolve() for c in changed if c.status == ChangeStatus.CHANGED}
    deleted = [c for c in changed if c.status == ChangeStatus.DELETED]
    policy_changed = any(classify(p) == ConfigKind.POLICY for p in present)
    if not present and not deleted:
        ctx.note(f"no configuration file changed since {ref}: nothing to lint")
        return [], ()
    kept = findings if policy_changed else [f for f in findings if f.path.resolve() in present]
    for change in deleted:
        kind = classify(change.path)
        kept.append(DELETED.finding(
            change.path, None, f"{display_path(change.path, ctx.cwd)} ({kind}) was deleted since {ref}",
            _deleted_impact(kind),
            "Restore the file, or confirm that nothing starts from it any more (docker compose config, the "
            "redis-server command line).",
        ))
    return kept, tuple(sorted(present))


def _deleted_impact(kind: ConfigKind | None) -> str:
    if kind == ConfigKind.REDIS_CONF:
        return ("A Redis started without it runs on defaults: no AOF, snapshots at most hourly for a few writes, "
                "so a crash can lose up to 1 h of sessions.")
    if kind == ConfigKind.COMPOSE:
        return "Services, volumes and restart policies defined there are gone: the stack may start without its data."
    if kind == ConfigKind.POLICY:
        return "bdr falls back to its embedded defaults: targets, retention and schedules may no longer be yours."
    return "Whatever started from it now starts differently."


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str, int | None, str]] = set()
    out = []
    for f in findings:
        key = (f.rule, str(f.path), f.line, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
