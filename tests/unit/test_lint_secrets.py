"""Secrets in plain text in files git tracks: found, located, and never printed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bdr.lint.runner import LintOptions, LintReport, run_lint
from bdr.lint.sarif import to_sarif
from bdr.lint.secrets import classify_value, parse_env_file

PASSWORD = "Tr0ub4dor-and-3"


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", "-c", "init.defaultBranch=main",
                    "-c", "commit.gpgsign=false", *args], cwd=cwd, check=True, capture_output=True)


def repo(tmp_path: Path, files: dict[str, str], *, commit: bool = True) -> Path:
    git(tmp_path, "init", "-q")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if commit:
        git(tmp_path, "add", "-A")
        git(tmp_path, "commit", "-qm", "config")
    return tmp_path


def lint(cwd: Path) -> LintReport:
    return run_lint(LintOptions(), cwd=cwd)


COMPOSE = f"""services:
  redis:
    image: redis:7
    restart: always
    command: redis-server --requirepass {PASSWORD}
    volumes: [redis_data:/data]
  api:
    image: example/api
    environment:
      REDIS_PASSWORD: {PASSWORD}
      REDIS_URL: redis://:{PASSWORD}@redis:6379/0
      JWT_SECRET: ${{JWT_SECRET}}
      OPENAI_API_KEY: ${{OPENAI_API_KEY:-sk-default-key}}
      POSTGRES_PASSWORD_FILE: /run/secrets/pg
      LOG_LEVEL: info
      CACHE_KEY_PREFIX: "sessions:"
secrets:
  pg:
    file: ./secrets/pg.txt
volumes:
  redis_data:
"""


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("REDIS_PASSWORD", "hunter2", "literal"),
        ("REDIS_PASSWORD", "${REDIS_PASSWORD}", None),
        ("REDIS_PASSWORD", "$REDIS_PASSWORD", None),
        ("REDIS_PASSWORD", "${REDIS_PASSWORD:-changeme}", "default"),
        ("REDIS_PASSWORD", "${REDIS_PASSWORD:-}", None),
        ("REDIS_PASSWORD", "", None),
        ("API_TOKEN", "abc", "literal"),
        ("AWS_SECRET_ACCESS_KEY", "abc", "literal"),
        ("SIGNING_KEY", "abc", "literal"),
        ("AWS_ACCESS_KEY_ID", "AKIA...", None),
        ("POSTGRES_PASSWORD_FILE", "/run/secrets/pg", None),
        ("DATABASE_URL", "postgres://app:pw@db/app", "literal"),
        ("DATABASE_URL", "postgres://app:${PG_PASSWORD}@db/app", None),
        ("LOG_LEVEL", "info", None),
        ("KEYSPACE", "x", None),
    ],
)
def test_what_counts_as_a_plain_secret(name: str, value: str, kind: str | None) -> None:
    assert classify_value(name, value) == kind


def test_env_file_parsing(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# comment\nexport A=1\nB='two words' # c\nC=\"x#y\"\nD=plain # note\nnot a line\n")
    assert parse_env_file(path) == [("A", "1", 2), ("B", "two words", 3), ("C", "x#y", 4), ("D", "plain", 5)]


def test_secrets_in_a_committed_compose_file(tmp_path: Path) -> None:
    cwd = repo(tmp_path, {"docker-compose.yml": COMPOSE, "secrets/pg.txt": PASSWORD})
    report = lint(cwd)
    found = [(f.rule, f.line, str(f.severity), f.facts.get("variable") or f.facts.get("option")
              or f.facts.get("secret")) for f in report.findings if f.rule.startswith("BDR-K")]
    assert found == [
        ("BDR-K005", 5, "error", "requirepass"),
        ("BDR-K001", 10, "error", "REDIS_PASSWORD"),
        ("BDR-K001", 11, "error", "REDIS_URL"),
        ("BDR-K001", 13, "error", "OPENAI_API_KEY"),
        ("BDR-K004", 18, "error", "pg"),
    ]
    assert "Rotate the secret" in report.findings[0].fix


def test_an_untracked_compose_file_is_a_warning(tmp_path: Path) -> None:
    cwd = repo(tmp_path, {"docker-compose.yml": COMPOSE}, commit=False)
    severities = {str(f.severity) for f in lint(cwd).findings if f.rule in ("BDR-K001", "BDR-K005")}
    assert severities == {"warning"}


def test_a_committed_env_file_and_an_ignored_one(tmp_path: Path) -> None:
    cwd = repo(tmp_path, {
        ".env": f"REDIS_PASSWORD={PASSWORD}\nLOG_LEVEL=debug\nQDRANT_API_KEY={PASSWORD}\n",
        ".env.example": "REDIS_PASSWORD=change-me\n",
    })
    report = lint(cwd)
    assert [(f.rule, f.path.name, f.line) for f in report.findings] == [
        ("BDR-K002", ".env", 1), ("BDR-K002", ".env", 3),
    ]
    git(cwd, "rm", "-q", "--cached", ".env")
    (cwd / ".gitignore").write_text(".env\n")
    assert lint(cwd).findings == ()


def test_a_password_in_a_committed_redis_conf(tmp_path: Path) -> None:
    cwd = repo(tmp_path, {"redis.conf": f"appendonly yes\nrequirepass {PASSWORD}\nuser bdr on >{PASSWORD} +@all ~*\n"
                                        "masterauth \"\"\n"})
    report = lint(cwd)
    assert [(f.rule, f.line) for f in report.findings] == [("BDR-K003", 2), ("BDR-K003", 3)]


def test_no_output_format_prints_a_secret_value(tmp_path: Path) -> None:
    cwd = repo(tmp_path, {"docker-compose.yml": COMPOSE, ".env": f"REDIS_PASSWORD={PASSWORD}\n",
                          "redis.conf": f"requirepass {PASSWORD}\n"})
    report = lint(cwd)
    assert len(report.findings) >= 6
    assert PASSWORD not in json.dumps(report.to_dict())
    assert PASSWORD not in json.dumps(to_sarif(report, cwd))
    from bdr.cli.lint_cmd import text_lines

    assert PASSWORD not in "\n".join(text_lines(report))
