"""Content verification on Redis as operators run it: ``enable-debug-command no`` (Redis 7's default).

There is no ``DEBUG DIGEST`` then, so the manifest's ``digest`` is "unavailable"; bdr's own
content digest of the RDB (``facts.content``, ``bdr-rdb-1``: per-db key counts and a sample
of keys with their hashes) takes its place:

- ``bdr restore`` compares the sample with what the restored server loaded and says so
  (the ``content sample`` check passed, no word of DEBUG); a restore whose sampled content
  differs fails its verification and is rolled back (exit 10);
- ``bdr verify --restore-test`` recomputes the digest of the stored RDB and of the RDB a
  temporary server saves again, and compares both with the manifest;
- a set that records no content (an older bdr's manifest) is restored with the content
  *not verified*, in the output, the JSON and the check, never "passed".
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from bdr.repository import Repository
from tests.backup_sets import rewrite_manifest
from tests.faults.harness import bdr, bdr_json, write_config
from tests.operators import OperatorRedis, Operators
from tests.redis_data import client_for_db


def production(operators: Operators, tmp_path: Path) -> tuple[OperatorRedis, Path, dict[int, dict[bytes, bytes]]]:
    """Redis from a shell with its defaults (DEBUG refused), data in db 0 and db 2."""
    op = operators.start("shell")
    assert op.client().config_get("enable-debug-command")["enable-debug-command"] == "no"
    data = {0: op.fill(120), 2: {f"other:{i}".encode(): f"v{i}".encode() for i in range(30)}}
    client_for_db(op.client(), 2).mset(data[2])  # type: ignore[arg-type]
    return op, write_config(tmp_path / "bdr.yaml", op), data


def backup(config: Path) -> dict[str, Any]:
    run, made = bdr_json(config, "backup", "redis")
    assert run.code == 0 and made is not None, run.output
    return dict(made)


def holds(op: OperatorRedis, data: dict[int, dict[bytes, bytes]]) -> bool:
    return all(client_for_db(op.client(), db).mget(list(keys)) == list(keys.values()) for db, keys in data.items())


def checks_of(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(c["name"]): c for c in result["checks"]}


def without_content(repo: Path, set_id: str) -> None:
    """The set's manifest as a bdr without content digests wrote it (re-sealed: the set stays good)."""
    def change(manifest: dict[str, Any]) -> None:
        manifest["facts"].pop("content")
        manifest["facts"].pop("content_unavailable", None)

    rewrite_manifest(Repository.open(repo), "redis", set_id, change)


def test_the_manifest_carries_a_content_digest_where_debug_is_refused(operators: Operators, tmp_path: Path) -> None:
    _, config, data = production(operators, tmp_path)
    facts = backup(config)["facts"]
    assert facts["digest"] == "unavailable"
    content = facts["content"]
    assert content["algorithm"] == "bdr-rdb-1" and len(content["value"]) >= 16
    assert content["keys"] == {"0": 120, "2": 30}
    assert facts["keyspace"] == {"0": {"keys": 120, "expires": 0}, "2": {"keys": 30, "expires": 0}}
    sample = content["sample"]
    assert sample, "no sample of keys"
    for entry in sample:
        key = base64.b64decode(entry["key"])
        assert key in data[int(entry["db"])], f"sampled key {key!r} is not in db {entry['db']}"
        assert entry["type"] == "string" and len(entry["hash"]) == 32


def test_a_restore_compares_the_sampled_content_and_names_no_debug(operators: Operators, tmp_path: Path) -> None:
    op, config, data = production(operators, tmp_path)
    set_id = backup(config)["id"]
    op.client().flushall()
    run, result = bdr_json(config, "restore", "redis", set_id, "--yes")
    assert run.code == 0, run.output
    sample = checks_of(result)["content sample"]
    assert sample["ok"] and not sample.get("skipped"), sample
    assert "sampled keys equal" in sample["detail"] and "bdr-rdb-1" in sample["detail"]
    assert result["not_verified"] == []
    said = run.stdout.replace(str(tmp_path), "<tmp>").upper()  # (the test's own name has the word)
    assert "DEBUG" not in said, "the restore talks of DEBUG on a server that refuses it"
    assert holds(op, data)
    shown = bdr(config, "restore", "redis", set_id, "--yes")
    (line,) = [x for x in shown.stdout.splitlines() if "content sample" in x]
    assert "✔" in line and "not verified" not in line, line
    assert "DEBUG" not in shown.output.replace(str(tmp_path), "<tmp>").upper()


def test_verify_restore_test_recomputes_the_content_digest(operators: Operators, tmp_path: Path) -> None:
    _, config, _ = production(operators, tmp_path)
    set_id = backup(config)["id"]
    run, report = bdr_json(config, "verify", set_id, "--restore-test")
    assert run.code == 0, run.output
    checks = checks_of(report)
    assert checks["content digest"]["ok"] and "equal to the manifest" in checks["content digest"]["detail"]
    assert checks["restore test: content"]["ok"], checks["restore test: content"]
    assert "content digest equal" in checks["restore test: content"]["detail"]

    def other_value(manifest: dict[str, Any]) -> None:
        manifest["facts"]["content"]["value"] = "0" * len(manifest["facts"]["content"]["value"])

    rewrite_manifest(Repository.open(tmp_path / "repo"), "redis", set_id, other_value)
    run, report = bdr_json(config, "verify", set_id, "--restore-test")
    assert run.code == 1 and report is not None, run.output
    checks = checks_of(report)
    assert not checks["content digest"]["ok"] and "differs" in checks["content digest"]["detail"]


def test_a_restore_whose_sampled_content_differs_is_rolled_back(operators: Operators, tmp_path: Path) -> None:
    op, config, data = production(operators, tmp_path)
    set_id = backup(config)["id"]

    def other_hash(manifest: dict[str, Any]) -> None:
        manifest["facts"]["content"]["sample"][0]["hash"] = "0" * 32

    rewrite_manifest(Repository.open(tmp_path / "repo"), "redis", set_id, other_hash)
    op.client().set("written:after:backup", "1")
    failed = bdr(config, "restore", "redis", set_id, "--yes")
    assert failed.code == 10, failed.output
    (line,) = failed.error_lines
    assert "failed at step 'verify'" in line and "content sample" in line and "rolled back" in line, line
    assert op.client().get("written:after:backup") == b"1", "not rolled back to the data from before"
    assert holds(op, data)


def test_content_not_recorded_is_not_verified_never_passed(operators: Operators, tmp_path: Path) -> None:
    op, config, data = production(operators, tmp_path)
    set_id = backup(config)["id"]
    without_content(tmp_path / "repo", set_id)
    run, result = bdr_json(config, "restore", "redis", set_id, "--yes")
    assert run.code == 0, run.output
    sample = checks_of(result)["content sample"]
    assert sample.get("skipped") is True and sample["detail"].startswith("not verified"), sample
    assert [x for x in result["not_verified"] if x.startswith("content sample: not verified")]
    assert holds(op, data)
    shown = bdr(config, "restore", "redis", set_id, "--yes")
    (line,) = [x for x in shown.stdout.splitlines() if "content sample" in x]
    assert "(not verified)" in line and "✔" not in line, line


def test_the_verify_step_does_not_count_an_unverified_check_as_passed(operators: Operators, tmp_path: Path) -> None:
    _, config, _ = production(operators, tmp_path)
    set_id = backup(config)["id"]
    without_content(tmp_path / "repo", set_id)
    run, result = bdr_json(config, "restore", "redis", set_id, "--yes")
    assert run.code == 0, run.output
    (step,) = [s for s in result["steps"] if s["name"] == "verify"]
    summary = step["detail"].split(":", 1)[0]
    assert summary == (f"{len(result['checks']) - len(result['not_verified'])} check(s) passed, "
                       f"{len(result['not_verified'])} not verified"), step["detail"]


def test_verify_shows_content_not_recorded_as_not_verified(operators: Operators, tmp_path: Path) -> None:
    _, config, _ = production(operators, tmp_path)
    set_id = backup(config)["id"]
    without_content(tmp_path / "repo", set_id)
    run, report = bdr_json(config, "verify", set_id)
    assert run.code == 0, run.output
    assert checks_of(report)["content digest"].get("skipped") is True, checks_of(report)["content digest"]
    (line,) = [x for x in bdr(config, "verify", set_id).stdout.splitlines() if "content digest" in x]
    assert "✔" not in line, line
