"""The manifest's own digest and MAC: canonical JSON, sealing, and what a damaged manifest reads as."""

from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import UTC, datetime
from typing import Any

import pytest

from bdr.crypto import Cipher
from bdr.repository.manifest import (
    DIGEST_MISMATCH,
    DIGEST_MISSING,
    FORMAT_VERSION,
    MAC_MISMATCH,
    NO_DIGEST,
    FileEntry,
    Manifest,
    StoredObject,
    canonical_json,
    digest_of,
    digest_problem,
    load_manifest,
    mac_check,
    manifest_problem,
)

KEY = Cipher.from_key(secrets.token_bytes(32), origin="test key")
OTHER = Cipher.from_key(secrets.token_bytes(32), origin="other key")


def manifest(**changes: Any) -> Manifest:
    base = Manifest(
        id="redis-20250124T020000Z-1a2b3c", source="redis", instance="production", method="rdb",
        started_at="2025-01-24T02:00:00.000000Z", finished_at="2025-01-24T02:00:03.250000Z",
        files=(FileEntry("dump.rdb", 1234, "ab" * 32, 0o600),),
        objects=(StoredObject("dump.rdb", 1234, "cd" * 32),),
        facts={"keyspace": {"0": {"keys": 3, "expires": 1}}, "ratio": 0.1 + 0.2, "name": "séssion ☃",
               "nested": [{"b": 1, "a": [1.5, None, True]}], "when": datetime(2025, 1, 1, tzinfo=UTC)},
        host="test-host",
    )
    return dataclasses.replace(base, **changes)


def stored(m: Manifest) -> bytes:
    return m.to_json()


def edited(raw: bytes, change: Any) -> bytes:
    data = json.loads(raw)
    change(data)
    return json.dumps(data, indent=4).encode()


def test_canonical_json_is_sorted_compact_ascii_and_leaves_out_the_seal() -> None:
    body = canonical_json({"b": 1, "a": {"d": "é", "c": [2, 1]}, "digest": "x", "mac": "y"})
    assert body == b'{"a":{"c":[2,1],"d":"\\u00e9"},"b":1}'
    assert canonical_json({"a": 1}) == canonical_json({"a": 1, "digest": "sha256:other"})
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})


def test_a_sealed_manifest_loads_clean_and_its_digest_covers_what_the_file_holds() -> None:
    sealed = manifest().seal()
    assert sealed.format == FORMAT_VERSION == 2
    assert sealed.digest.startswith("sha256:") and sealed.mac == ""
    loaded = load_manifest(stored(sealed))
    assert loaded.problem is None and loaded.manifest == Manifest.from_json(stored(sealed))
    assert loaded.manifest is not None and digest_problem(loaded.manifest) is None
    # the digest is over the file's JSON: re-indenting or reordering keys does not matter
    assert load_manifest(edited(stored(sealed), lambda d: None)).problem is None
    assert sealed.digest == digest_of(json.loads(stored(sealed)))


def test_what_the_object_computes_is_what_the_file_holds() -> None:
    """Non-JSON facts (a datetime), unicode, floats, nested lists: the round trip is exact."""
    sealed = manifest().seal()
    again = Manifest.from_json(stored(sealed))
    assert again.canonical() == canonical_json(json.loads(stored(sealed)))
    assert digest_problem(again) is None


@pytest.mark.parametrize(("change", "problem"), [
    (lambda d: d["facts"]["keyspace"]["0"].update(keys=999), DIGEST_MISMATCH),
    (lambda d: d["objects"][0].update(sha256="0" * 64), DIGEST_MISMATCH),
    (lambda d: d.update(finished_at="2025-01-25T02:00:00.000000Z"), DIGEST_MISMATCH),
    (lambda d: d.update(tags=["keep-forever"]), DIGEST_MISMATCH),
    (lambda d: d.pop("digest"), DIGEST_MISSING),
    (lambda d: d.update(digest=""), DIGEST_MISSING),
], ids=["key count", "object sha256", "time", "tags", "digest removed", "digest emptied"])
def test_any_edit_makes_the_manifest_damaged(change: Any, problem: str) -> None:
    loaded = load_manifest(edited(stored(manifest().seal()), change))
    assert loaded.problem == problem
    assert loaded.manifest is not None  # still readable: bdr verify shows what it says


@pytest.mark.parametrize(("raw", "start"), [
    (b'{"id": "redis-2025', "unreadable manifest (truncated or not JSON): "),
    (b"\xff\xfe garbage", "unreadable manifest (truncated or not JSON): "),
    (b"[1, 2]", "unreadable manifest: not a JSON object"),
    (b'{"format": 2, "id": "x"}', "invalid manifest: "),
    (b'{"format": 3}', "manifest format 3 is newer than this bdr reads (2): upgrade bdr"),
    (b'{"format": "2"}', "invalid manifest: format '2'"),
])
def test_an_unreadable_manifest_is_a_reason_not_an_exception(raw: bytes, start: str) -> None:
    loaded = load_manifest(raw)
    assert loaded.manifest is None
    assert loaded.problem is not None and loaded.problem.startswith(start)


def test_a_truncated_manifest_is_unreadable() -> None:
    raw = stored(manifest().seal())
    loaded = load_manifest(raw[: len(raw) // 2])
    assert loaded.manifest is None and loaded.problem is not None and "truncated" in loaded.problem


def test_format_1_manifests_still_load_without_a_digest() -> None:
    old = dataclasses.replace(manifest(), format=1)
    raw = json.dumps({k: v for k, v in json.loads(stored(old)).items() if k not in ("digest", "mac")}).encode()
    loaded = load_manifest(raw)
    assert loaded.problem is None and loaded.manifest is not None and not loaded.manifest.sealed
    assert manifest_problem(loaded.manifest, KEY) is None
    assert mac_check(loaded.manifest, KEY) == (None, NO_DIGEST)
    assert NO_DIGEST == "no manifest digest (written by an older bdr)"


def test_a_set_written_with_a_key_carries_a_mac_that_only_the_key_checks() -> None:
    sealed = manifest(encrypted=True, key_id=KEY.key_id).seal(KEY)
    assert sealed.mac.startswith(f"hmac-sha256:{KEY.key_id}:raw:")
    assert mac_check(sealed, KEY)[0] is True
    assert manifest_problem(sealed, KEY) is None
    assert mac_check(sealed, None) == (None, f"not checked: no key at hand (key id {KEY.key_id})")
    ok, detail = mac_check(sealed, OTHER)  # a key rotated since: not a proof either way
    assert ok is None and detail.startswith("not checked: cannot decrypt")


def test_an_edit_with_a_recomputed_digest_is_caught_by_the_mac() -> None:
    """Whoever edits the file can recompute the digest; only the key's holder can make the MAC."""
    sealed = manifest(encrypted=True, key_id=KEY.key_id).seal(KEY)
    data = json.loads(stored(sealed))
    data["facts"]["keyspace"]["0"]["keys"] = 999
    data["digest"] = digest_of(data)
    loaded = load_manifest(json.dumps(data).encode())
    assert loaded.problem is None and loaded.manifest is not None  # the digest matches now
    assert manifest_problem(loaded.manifest, KEY) == MAC_MISMATCH
    assert manifest_problem(loaded.manifest, None) is None  # without the key it cannot be told


def test_a_removed_or_foreign_mac_shows_without_the_key() -> None:
    sealed = manifest(encrypted=True, key_id=KEY.key_id).seal(KEY)
    unsigned = manifest(encrypted=True, key_id=KEY.key_id).seal(None)
    assert manifest_problem(unsigned, None) == f"manifest MAC missing from a set written with key {KEY.key_id}: edited"
    foreign = dataclasses.replace(sealed, mac=OTHER.digest(sealed.canonical()))
    problem = manifest_problem(foreign, None)
    assert problem == f"manifest MAC made with key {OTHER.key_id}, not with the set's key {KEY.key_id}: edited"


def test_a_passphrase_mac_is_checked_with_the_passphrase() -> None:
    writer = Cipher.from_passphrase(b"correct horse battery staple", cost=10)
    sealed = manifest(encrypted=True, key_id=writer.key_id).seal(writer)
    reader = Cipher.from_passphrase(b"correct horse battery staple", cost=10)  # another salt, another run
    assert mac_check(sealed, reader)[0] is True
    wrong = Cipher.from_passphrase(b"wrong horse", cost=10)
    assert mac_check(sealed, wrong)[0] is None  # a wrong passphrase derives another key id: not checked
