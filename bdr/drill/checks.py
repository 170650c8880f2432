"""Application checks on restored data: what the application needs to find there, written in bdr.yaml.

In the spirit of Veeam SureBackup's application tests and the old runbook's
``redis-cli GET test_key``: a restored set is good when the application could run on it,
not only when its bytes match. Each check of ``drill.<source>.checks`` runs against the
*restored* target (never production) and becomes one verification: passed, FAILED (a
BREACH), or not verified when it could not be made (the target unreachable).

- ``key_exists: KEY`` (``{key, db}``): ``EXISTS`` on the restored Redis;
- ``min_dbsize: N`` (``{count, db}``): at least N keys (all databases, or ``db``);
- ``collection_exists: NAME``, ``min_points: {collection, count}``: on the restored Qdrant
  (exact count);
- ``file_exists: PATH``, ``file_parses: PATH`` (``{path, format}``: yaml, json, toml, env):
  the restored file (under the scratch root) parses; the message names the line of a parse
  error, never the content (it may be a secret).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

from bdr.config import Config
from bdr.drill.settings import AppCheck
from bdr.errors import BdrError
from bdr.report.records import Verification, VerificationKind

ENV_LINE = re.compile(r"^\s*(export\s+)?[A-Za-z_][A-Za-z0-9_.-]*\s*=")


def run_checks(config: Config, source: str, checks: tuple[AppCheck, ...], target: str,
               root: Path | None = None) -> list[Verification]:
    """Every check of ``source`` against the restored ``target`` (instance name; config: ``root``)."""
    out = []
    for check in checks:
        try:
            ok, detail = _run(config, check, target, root)
            out.append(Verification(VerificationKind.APPLICATION, check.describe(), ok, detail))
        except BdrError as exc:
            out.append(Verification(VerificationKind.APPLICATION, check.describe(), False,
                                    f"could not be checked: {exc.message}", skipped=True))
        except Exception as exc:  # the target went away: say so, do not crash the report
            out.append(Verification(VerificationKind.APPLICATION, check.describe(), False,
                                    f"could not be checked: {type(exc).__name__}: {exc}", skipped=True))
    return out


def _run(config: Config, check: AppCheck, target: str, root: Path | None) -> tuple[bool, str]:
    if check.kind in ("key_exists", "min_dbsize"):
        return _redis(config, check, target)
    if check.kind in ("collection_exists", "min_points"):
        return _qdrant(config, check, target)
    assert root is not None
    return _file(check, root)


def _redis(config: Config, check: AppCheck, target: str) -> tuple[bool, str]:
    from bdr.runtime import redis_runtime

    runtime = redis_runtime(config.redis_instance(target))
    client = runtime.client(db=check.db, timeout=10.0, retries=1)
    if check.kind == "key_exists":
        found = bool(client.exists(check.key))
        kind = client.type(check.key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        return found, (f"{check.key!r} is there (type {kind})" if found
                       else f"{check.key!r} is missing from the restored data")
    if check.all_dbs:
        keyspace = client.info("keyspace")
        keys = sum(int(v.get("keys", 0)) for v in keyspace.values() if isinstance(v, dict))
    else:
        keys = int(client.dbsize())
    return keys >= check.count, f"{keys} keys, at least {check.count} required"


def _qdrant(config: Config, check: AppCheck, target: str) -> tuple[bool, str]:
    from bdr.engines.qdrant.client import connect, target_of

    with connect(target_of(config, target)) as client:
        if not client.collection_exists(check.collection):
            return False, f"collection {check.collection!r} is missing from the restored data"
        if check.kind == "collection_exists":
            return True, f"collection {check.collection!r} is there"
        points = int(client.count(check.collection, exact=True).count)
    return points >= check.count, f"{points} points, at least {check.count} required"


def _file(check: AppCheck, root: Path) -> tuple[bool, str]:
    path = root / check.path
    if not path.is_file():
        return False, f"{check.path} is missing from the restored files"
    if check.kind == "file_exists":
        return True, f"{check.path} is there ({path.stat().st_size} bytes)"
    text = path.read_text(encoding="utf-8", errors="strict")
    problem = parse_problem(text, check.format)
    if problem:
        return False, f"{check.path} does not parse as {check.format}: {problem}"
    return True, f"{check.path} parses as {check.format} ({len(text.splitlines())} lines)"


def parse_problem(text: str, fmt: str) -> str:
    """Why ``text`` does not parse as ``fmt`` ('' when it does); positions only, never content."""
    try:
        if fmt == "yaml":
            yaml.safe_load(text)
        elif fmt == "json":
            json.loads(text)
        elif fmt == "toml":
            tomllib.loads(text)
        else:
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip() and not line.lstrip().startswith("#") and not ENV_LINE.match(line):
                    return f"line {number} is not NAME=value"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        return f"{getattr(exc, 'problem', None) or 'invalid YAML'} at {where}"
    except json.JSONDecodeError as exc:
        return f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    except tomllib.TOMLDecodeError as exc:
        return str(exc).split("\n")[0]
    return ""
