"""Secrets written in plain text into files that git tracks.

A password committed to git is in every clone and in the history for good: removing the
line does not un-leak it, only rotating it does. The agent backend keeps its secrets in
``.env`` (never committed; bdr backs it up encrypted, ``files.secrets``), referenced from
compose as ``${REDIS_PASSWORD}``. Lint flags, in files git tracks:

- literal values of secret-looking variables (``*PASSWORD*``, ``*SECRET*``, ``*TOKEN*``,
  ``*KEY*`` ...) and URLs with a password, in compose ``environment:`` and ``command:``,
- ``.env`` files with such values,
- ``requirepass`` / ``masterauth`` / ACL ``>password`` lines of a redis.conf,
- files named by compose's top-level ``secrets:``.

Findings name the variable or directive, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bdr.lint.compose import compose_files
from bdr.lint.context import LintContext, check
from bdr.lint.files import ConfigKind
from bdr.lint.findings import Finding, Severity, display_path, rule

SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|(^|_)KEY$", re.IGNORECASE
)
NOT_SECRET_NAME = re.compile(r"(_FILE|_PATH|_ENV|_ID|_NAME|_ALGORITHM|_LENGTH|_TTL)$", re.IGNORECASE)
URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/:@\s]*:([^@\s/]+)@", re.IGNORECASE)
REFERENCE = re.compile(r"^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$")
DEFAULTED = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:?[-=]([^}]*)\}$")
SECRET_OPTIONS = frozenset({"requirepass", "masterauth"})

ENV_SECRET = rule(
    "BDR-K001", "secret-in-compose-environment", Severity.ERROR,
    "A compose file sets a secret to a literal value.",
    "A literal password in a compose file is in every clone of the repository and in its history. Reference "
    "it (${REDIS_PASSWORD}) and keep the value in an uncommitted .env or in compose secrets.",
    tags=("security",),
)
ENV_FILE = rule(
    "BDR-K002", "env-file-committed", Severity.ERROR, "A .env file with secrets is tracked by git.",
    "The runbook's rule: .env is never committed. bdr backs it up encrypted (files.secrets); git keeps it in "
    "plain text in every clone.",
    tags=("security",),
)
CONF_SECRET = rule(
    "BDR-K003", "secret-in-redis-conf", Severity.ERROR, "A redis.conf tracked by git holds a password.",
    "requirepass, masterauth and ACL >password lines in a committed redis.conf put the password in every "
    "clone. Load it at start instead (an ACL file outside git, or --requirepass from a secret).",
    tags=("security",),
)
SECRET_FILE = rule(
    "BDR-K004", "compose-secret-file-committed", Severity.ERROR,
    "A file behind a compose secret is tracked by git.",
    "Compose secrets are meant to keep passwords out of the configuration; a committed secret file defeats "
    "that.",
    tags=("security",),
)
COMMAND_SECRET = rule(
    "BDR-K005", "secret-on-command-line", Severity.ERROR, "A compose command passes a password as an argument.",
    "A password on the command line shows in docker inspect, ps and the compose file itself. Put it in a "
    "config file or ACL file mounted from a secret.",
    tags=("security",),
)

ROTATE = ("Rotate the secret: it stays in the git history even after the line is removed. "
          "Keep the new value out of git (an untracked .env, backed up encrypted by bdr backup config).")


@dataclass(frozen=True, slots=True)
class SecretValue:
    """A secret-looking entry: its name and whether the value is a literal or a literal default."""

    name: str
    line: int
    defaulted: bool


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and not NOT_SECRET_NAME.search(name)


def classify_value(name: str, value: str | None) -> str | None:
    """``literal``, ``default`` (a literal after ``${VAR:-``) or None (empty, a reference, not a secret)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    password = URL_PASSWORD.match(text)
    if password:
        return None if password.group(1).startswith("$") else "literal"
    if not is_secret_name(name):
        return None
    if REFERENCE.match(text):
        return None
    default = DEFAULTED.match(text)
    if default:
        return "default" if default.group(1) else None
    if "$" in text:
        return None
    return "literal"


def parse_env_file(path: Path) -> list[tuple[str, str, int]]:
    """``NAME=value`` entries of a .env file (``export``, quotes and comments handled)."""
    out = []
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if value[:1] in ("'", '"') and value[:1] in value[1:]:
            value = value[1: value.index(value[0], 1)]
        else:
            value = value.split(" #", 1)[0].strip()
        out.append((name.strip(), value, number))
    return out


@check
def check_compose_secrets(ctx: LintContext) -> Iterable[Finding]:
    """BDR-K001/K004/K005: literal secrets in compose files (errors when git tracks the file)."""
    for compose in compose_files(ctx).values():
        if compose.problem:
            continue
        tracked = ctx.is_tracked(compose.path)
        severity = Severity.ERROR if tracked else Severity.WARNING
        where = "committed to git" if tracked else "in plain text (one git add from being committed)"
        for service in compose.services:
            for entry in service.environment:
                kind = classify_value(entry.name, entry.value)
                if kind is None:
                    continue
                detail = "has a literal default value" if kind == "default" else "is set to a literal value"
                yield ENV_SECRET.finding(
                    compose.path, entry.line, f"service {service.name}: {entry.name} {detail}",
                    f"The secret is {where}: anyone with a clone has it, and restoring the configuration "
                    "from git brings the old value back after a rotation.",
                    f"Write {entry.name}: ${{{_reference(entry.name)}}} and put the value in an untracked .env."
                    + (f" {ROTATE}" if tracked else ""),
                    severity=severity, facts={"service": service.name, "variable": entry.name},
                )
            for option in _command_secrets(service.command or ()):
                yield COMMAND_SECRET.finding(
                    compose.path, service.command_line or service.line,
                    f"service {service.name}: the command passes --{option} with a literal password",
                    f"The password is {where} and visible to anyone who can run docker inspect or ps on the host.",
                    f"Best, an ACL file mounted as a compose secret; at least --{option} ${{{_reference(option)}}} "
                    "with the value in the untracked .env."
                    + (f" {ROTATE}" if tracked else ""),
                    severity=severity, facts={"service": service.name, "option": option},
                )
        for name, file, line in compose.secret_files:
            target = (compose.path.parent / file).resolve()
            if target.is_file() and ctx.is_tracked(target):
                yield SECRET_FILE.finding(
                    compose.path, line, f"secret {name} reads {file}, which git tracks",
                    "The secret is in every clone of the repository and in its history.",
                    f"git rm --cached {file}, add it to .gitignore. {ROTATE}",
                    facts={"secret": name},
                )


def _reference(name: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())


def _command_secrets(argv: tuple[str, ...]) -> list[str]:
    found = []
    for i, arg in enumerate(argv):
        option = arg[2:].lower() if arg.startswith("--") else None
        if option in SECRET_OPTIONS and i + 1 < len(argv) and argv[i + 1] and not argv[i + 1].startswith("$"):
            found.append(option)
    return found


@check
def check_env_files(ctx: LintContext) -> Iterable[Finding]:
    """BDR-K002: .env files with secret values that git tracks (untracked ones are the right place)."""
    for path in ctx.of_kind(ConfigKind.ENV):
        if not ctx.is_tracked(path):
            continue
        try:
            entries = parse_env_file(path)
        except OSError:
            continue
        secrets = [(name, line) for name, value, line in entries if classify_value(name, value) is not None]
        shown = display_path(path, ctx.cwd)
        for name, line in secrets:
            yield ENV_FILE.finding(
                path, line, f"{shown} is tracked by git and sets {name}",
                "The secret is in every clone and in the history; the runbook's rule is never to commit .env.",
                f"git rm --cached {shown} and add it to .gitignore; keep it in bdr's encrypted config backup "
                f"(files.secrets in bdr.yaml). {ROTATE}",
                facts={"variable": name},
            )


@check
def check_redis_conf_secrets(ctx: LintContext) -> Iterable[Finding]:
    """BDR-K003: passwords in a committed redis.conf."""
    for conf in ctx.redis_confs.values():
        for directive in conf.directives:
            if not ctx.is_tracked(directive.path):
                continue
            secret = directive.name in SECRET_OPTIONS and directive.args and directive.args[0] != ""
            acl = directive.name == "user" and any(a.startswith((">", "#")) for a in directive.args)
            if not (secret or acl):
                continue
            label = f"user {directive.args[0]}" if acl else directive.name
            yield CONF_SECRET.finding(
                directive.path, directive.line,
                f"{display_path(directive.path, ctx.cwd)} is tracked by git and sets a password ({label})",
                "Anyone with a clone can log in to Redis and read or delete every session and RBAC record.",
                f"Move the {label} line to a file outside git (include it, or use aclfile), then rotate the "
                "password.",
                facts={"directive": directive.name},
            )
