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

from bdr.engines.base import Check
from bdr.engines.redis.info import DIGEST_UNAVAILABLE, Keyspace, digest
from bdr.manifest import Manifest

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


def check_files(manifest: Manifest | None, files: Path) -> list[Check]:
    facts = dict(manifest.facts) if manifest else {}
    checks: list[Check] = []
    rdb = files / facts.get("dbfilename", "dump.rdb")
    if rdb.is_file():
        checks.append(run_checker("redis-check-rdb", rdb))
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
    """Load the files into a temporary server and compare counts and digest with the manifest."""
    from bdr.engines.redis.temporary import temporary_instance

    facts = dict(manifest.facts)
    with temporary_instance(files) as server:
        client = server.client(timeout=60.0)
        live = Keyspace.from_info(client.info("keyspace"))
        live_digest = digest(client)
    checks = []
    expected = Keyspace.from_facts(facts.get("keyspace") or {})
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
