"""Content proofs of restored data against the manifest of the set it came from.

The restore runbook already verifies (its ``verify`` step: key counts, a sample of keys by
content, ``DEBUG DIGEST`` where allowed; each Qdrant collection's content hash; every file's
sha256 and mode); those checks become the ``restore`` verifications of the report, the ones
it could not make *not verified*. A live test adds a proof of its own per source, on the
restored target, which it is free to read in full:

- Redis: the target saves its memory (``BGSAVE``, on the test target only) and bdr's
  content digest of that RDB (``bdr-rdb-1``, :func:`bdr.engines.redis.rdb.digest_file`)
  must equal the manifest's: every key, value and expiry. Redis does not load keys whose TTL
  has passed since the snapshot, so when the restored server holds fewer keys than the set,
  no more than the set's keys with a TTL, the digest cannot match and the proof is *not
  verified* (the runbook's key sample stands); any other difference fails;
- Qdrant: each collection's exact point count against the manifest;
- configuration: the sha256 of every restored file against the manifest (a secret, whose
  manifest holds no hash, by its size and mode 0600: its content was authenticated by
  AES-GCM as it was decrypted).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from bdr.config import Config
from bdr.engines.base import RestoreResult
from bdr.errors import BdrError
from bdr.report.records import Verification, VerificationKind
from bdr.repository.manifest import Manifest

SAVE_TIMEOUT = 600.0


def runbook_checks(result: RestoreResult) -> list[Verification]:
    """The restore's own verification checks, as the report shows them."""
    return [Verification(VerificationKind.RESTORE, c.name, c.ok, c.detail, c.skipped) for c in result.checks]


def proofs(config: Config, source: str, manifest: Manifest, target: str, root: Path | None) -> list[Verification]:
    """The independent content proofs of ``source`` on the restored ``target``; never raises."""
    try:
        if source == "redis":
            return [redis_digest(config, manifest, target)]
        if source == "qdrant":
            return qdrant_counts(config, manifest, target)
        assert root is not None
        return [config_files(manifest, root)]
    except BdrError as exc:
        return [Verification(VerificationKind.CONTENT, f"{source} content", False,
                             f"could not be checked: {exc.message}", skipped=True)]
    except Exception as exc:  # reported, never fatal: the report says what could not be proven
        return [Verification(VerificationKind.CONTENT, f"{source} content", False,
                             f"could not be checked: {type(exc).__name__}: {exc}", skipped=True)]


def redis_digest(config: Config, manifest: Manifest, target: str) -> Verification:
    from bdr.engines.redis.rdb import digest_file
    from bdr.runtime import redis_runtime

    name = "full content digest (bdr-rdb-1) of the restored server"
    content = manifest.facts.get("content")
    if not isinstance(content, dict) or "value" not in content:
        why = manifest.facts.get("content_unavailable", "the manifest records no content digest")
        return Verification(VerificationKind.CONTENT, name, False, f"not verified: {why}", skipped=True)
    runtime = redis_runtime(config.redis_instance(target))
    client = runtime.client(timeout=30.0, retries=1)
    saves = int(client.info("persistence").get("rdb_saves", 0))
    client.bgsave(schedule=True)
    deadline = time.monotonic() + SAVE_TIMEOUT
    while True:
        info = client.info("persistence")
        if int(info.get("rdb_saves", 0)) > saves and not int(info.get("rdb_bgsave_in_progress", 0)):
            break
        if time.monotonic() > deadline:
            return Verification(VerificationKind.CONTENT, name, False, "not verified: the restored server's BGSAVE "
                                f"did not finish within {SAVE_TIMEOUT:g}s", skipped=True)
        time.sleep(0.02)
    if info.get("rdb_last_bgsave_status") != "ok":
        return Verification(VerificationKind.CONTENT, name, False, "not verified: the restored server's BGSAVE "
                            "failed (see its log)", skipped=True)
    filename = str(client.config_get("dbfilename").get("dbfilename", "dump.rdb"))
    digest = digest_file(runtime.data_path() / filename)
    want = str(content["value"])
    if digest.value == want:
        return Verification(VerificationKind.CONTENT, name, True,
                            f"equal to the manifest's ({want[:16]}…): all {digest.total_keys} keys, values and "
                            "expiry times")
    backup_keys = sum(int(n) for n in dict(content.get("keys", {})).values())
    with_ttl = sum(int(n) for n in dict(content.get("expires", {})).values())
    missing = backup_keys - digest.total_keys
    if 0 < missing <= with_ttl:
        return Verification(VerificationKind.CONTENT, name, False,
                            f"not verified: the restored server holds {digest.total_keys} keys, the set "
                            f"{backup_keys}; the {missing} missing are at most its {with_ttl} keys with a TTL, which "
                            "Redis does not load once expired, so the digests cannot match", skipped=True)
    return Verification(VerificationKind.CONTENT, name, False,
                        f"the restored server's digest {digest.value[:16]}… differs from the manifest's {want[:16]}… "
                        f"({digest.total_keys} keys restored, {backup_keys} in the set)")


def qdrant_counts(config: Config, manifest: Manifest, target: str) -> list[Verification]:
    from bdr.engines.qdrant.client import connect, target_of

    collections = manifest.facts.get("collections")
    if not isinstance(collections, dict):
        return [Verification(VerificationKind.CONTENT, "points per collection", False,
                             "not verified: the manifest records no collections", skipped=True)]
    out = []
    with connect(target_of(config, target)) as client:
        for name, facts in sorted(collections.items()):
            want = int(dict(facts).get("points", -1))
            if not client.collection_exists(name):
                out.append(Verification(VerificationKind.CONTENT, f"{name}: points", False,
                                        "the collection is missing from the restored Qdrant"))
                continue
            have = int(client.count(name, exact=True).count)
            out.append(Verification(VerificationKind.CONTENT, f"{name}: points", have == want,
                                    f"{have} points restored, the manifest says {want}"))
    return out


def config_files(manifest: Manifest, root: Path) -> Verification:
    name = "every restored file against the manifest"
    equal, wrong = 0, []
    for entry in manifest.files:
        path = root / entry.path
        if not path.is_file():
            wrong.append(f"{entry.path} missing")
            continue
        data = path.read_bytes()
        if entry.secret:
            mode = path.stat().st_mode & 0o777
            if mode != 0o600:
                wrong.append(f"{entry.path} (a secret) has mode {mode:o}, not 600")
            elif len(data) != entry.size:
                wrong.append(f"{entry.path} (a secret) is {len(data)} bytes, the manifest says {entry.size}")
            else:
                equal += 1
        elif hashlib.sha256(data).hexdigest() != entry.sha256:
            wrong.append(f"{entry.path} sha256 differs")
        else:
            equal += 1
    if wrong:
        return Verification(VerificationKind.CONTENT, name, False, "; ".join(wrong[:5]))
    secrets = sum(1 for e in manifest.files if e.secret)
    return Verification(VerificationKind.CONTENT, name, True,
                        f"{equal} of {len(manifest.files)} file(s) equal: sha256 of {equal - secrets}, size and mode "
                        f"0600 of {secrets} secret(s)")
