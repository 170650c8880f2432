"""Offline checks of a Redis backup: Redis's own checkers, and an optional restore test.

``redis-check-rdb`` parses the whole RDB; ``redis-check-aof`` checks a multi-part AOF from
its manifest (or a single legacy file). With ``restore_test`` the set is loaded into a
temporary redis-server on a free loopback port and its key counts and digest compared
with the manifest: the only proof that a backup restores, short of restoring it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bdr.engines.base import Check
from bdr.engines.redis.info import DIGEST_UNAVAILABLE, Keyspace, digest
from bdr.errors import BdrError
from bdr.repository.manifest import Manifest

TOOL_TIMEOUT = 600
VERDICT = re.compile(r"looks OK|are valid|is valid|not valid|bad file format|corrupt|truncated|error", re.I)
VERDICT_NOISE = re.compile(r"^\[offset \d+\]\s*|\\o/\s*")


def run_checker(tool: str, target: Path) -> Check:
    """Run ``tool`` (redis-check-rdb / redis-check-aof) on ``target``; its verdict as a check."""
    binary = shutil.which(tool)
    if binary is None:
        return Check(tool, False, f"{tool} not found on PATH (apt-get install redis-tools)")
    argv = [binary, str(target)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, stdin=subprocess.DEVNULL,
                          check=False)
    output = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    verdict = next((line for line in reversed(output) if VERDICT.search(line)), output[-1] if output else "")
    ok = proc.returncode == 0 and "not valid" not in verdict.lower()
    summary = VERDICT_NOISE.sub("", verdict).strip()
    keys = next((line.split("]", 1)[1].strip() for line in output if line.endswith("keys read")), "")
    return Check(f"{tool} {target.name}", ok, f"{summary}{f' ({keys})' if keys and ok else ''}"[:200])


def content_check(facts: dict[str, Any], rdb: Path) -> Check:
    """The content digest of the stored RDB, recomputed, against the one the manifest records."""
    from bdr.engines.redis.content import digest_facts

    want = facts.get("content")
    if not want:
        why = facts.get("content_unavailable") or "the set records no content digest (an older bdr, or a copy of " \
            "a stopped server's files)"
        return Check("content digest", True, f"not verified: {why}", skipped=True)
    try:
        got = digest_facts(rdb)
    except BdrError as exc:
        return Check("content digest", False, exc.message)
    if got.facts is None:
        return Check("content digest", True, f"not verified: {got.unavailable}", skipped=True)
    same = got.facts.get("value") == want.get("value") and got.facts.get("keys") == want.get("keys")
    total = sum(int(n) for n in (got.facts.get("keys") or {}).values())
    return Check("content digest", same, f"{want.get('algorithm')} {str(want.get('value'))[:16]}, {total} keys: "
                 + ("equal to the manifest" if same else f"recomputed {str(got.facts.get('value'))[:16]}, differs"))


def check_files(manifest: Manifest | None, files: Path) -> list[Check]:
    facts = dict(manifest.facts) if manifest else {}
    checks: list[Check] = []
    rdb = files / facts.get("dbfilename", "dump.rdb")
    if rdb.is_file():
        checks.append(run_checker("redis-check-rdb", rdb))
        checks.append(content_check(facts, rdb))
    aof_dir = files / facts.get("appenddirname", "appendonlydir")
    if aof_dir.is_dir():
        manifests = sorted(aof_dir.glob("*.manifest"))
        if manifests:
            checks.append(run_checker("redis-check-aof", manifests[0]))
        else:
            checks.append(Check("redis-check-aof", False, f"{aof_dir.name} has no manifest file"))
    if (files / "appendonly.aof").is_file():
        checks.append(run_checker("redis-check-aof", files / "appendonly.aof"))
    if not checks:
        checks.append(Check("data files", False, "neither an RDB nor an AOF in the backup"))
    return checks


def restore_test(manifest: Manifest, files: Path) -> list[Check]:
    """Load the files into a temporary server and compare it with the manifest: counts, content, digest.

    The content proof goes through Redis itself: the temporary server, once loaded, saves
    its data again and that RDB's content digest must equal the manifest's (keys whose TTL
    passed are dropped at load: then the sampled keys are compared instead).
    """
    from bdr.engines.redis.content import digest_facts, sample_checks
    from bdr.engines.redis.temporary import temporary_instance

    facts = dict(manifest.facts)
    checks: list[Check] = []
    with temporary_instance(files) as server:
        client = server.client(timeout=600.0)
        live = Keyspace.from_info(client.info("keyspace"))
        live_digest = digest(client)
        expected = Keyspace.from_facts(facts.get("keyspace") or {})
        content = facts.get("content")
        if content and live.total_keys == expected.total_keys:
            client.save()
            saved = Path(str(client.config_get("dir")["dir"])) / str(client.config_get("dbfilename")["dbfilename"])
            again = digest_facts(saved)
            if again.facts is not None:
                same = again.facts.get("value") == content.get("value")
                checks.append(Check("restore test: content", same,
                                    "loaded and saved again by redis-server: content digest equal" if same else
                                    f"content digest after a load {str(again.facts.get('value'))[:16]} != backup "
                                    f"{str(content.get('value'))[:16]}"))
        elif content:
            gone = {db: keys - live.dbs.get(db, (0, 0))[0] for db, (keys, _) in expected.dbs.items()}
            checks += [Check(f"restore test: {c.name}", c.ok, c.detail, c.skipped)
                       for c in sample_checks(lambda db: server.client(db=db, timeout=60.0), content, gone)]
    if facts.get("keyspace"):
        # Keys whose TTL passed since the backup are not loaded: allow exactly that difference.
        ok = all(
            expected.dbs[db][0] - expected.dbs[db][1] <= live.dbs.get(db, (0, 0))[0] <= expected.dbs[db][0]
            for db in expected.dbs
        ) and set(live.dbs) <= set(expected.dbs)
        checks.append(Check("restore test: key counts", ok,
                            f"loaded {live.total_keys} keys, manifest {expected.total_keys}"))
    want = facts.get("digest", DIGEST_UNAVAILABLE)
    if want != DIGEST_UNAVAILABLE and live.total_keys == expected.total_keys:
        checks.append(Check("restore test: digest", live_digest == want,
                            "equal" if live_digest == want else f"{live_digest[:16]} != {want[:16]}"))
    return checks
