"""Runbook: "Off-Site Backups" (restore from S3, RTO < 60 minutes).

Symptoms: the host and its local backups are gone (fire, ransomware, a deleted volume
group). Only the off-site copies remain.
Recovery: ``bdr list --remote s3://bucket/prefix``, then
``bdr restore all latest --remote s3://bucket/prefix``: download, decrypt, verify, restore
configuration, Redis and Qdrant.
The drill proves the off-site copy is complete, encrypted, and enough to come back.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest

from bdr import api
from drills.offsite import offsite_repository
from drills.recorder import Drill
from drills.stack import Stack, wipe

pytestmark = pytest.mark.drill("offsite_restore", title="Restore from off-site (S3) after losing the host",
                                sources=("redis", "qdrant", "config"),
                                objectives=("rto offsite_restore", "rpo sessions", "rpo rbac", "rpo vectors"))


def test_offsite_restore(stack: Stack, drill: Drill) -> None:
    pytest.importorskip("moto", reason="no remote in bdr.yaml and moto is not installed to stand in for S3")
    with offsite_repository(stack.config) as (config, url, where):
        stack.config = config
        writer = stack.start_writer(stack.all_channels())
        with drill.step("off-site backup", f"bdr backup all --remote {url}") as step, writer.paused():
            outcome = api.backup(config, "all", remote=url)
            step.detail = f"{outcome.manifest.id} to {where}, encrypted"
            expected_digest = api.redis_fingerprint(stack.redis.client()).digest
            expected_memories = stack.qdrant_points("memories")
            before = stack.fingerprint("redis", "qdrant", "config")
        assert outcome.manifest.encrypted, "off-site copies must be encrypted by default"
        env_sha = hashlib.sha256((stack.config_dir / ".env").read_bytes()).hexdigest()

        fault = drill.fault("the host is lost: data, configuration and every local backup gone")
        writer.stop()
        stack.redis.kill()
        lost = stack.lose_redis()
        for path in (stack.qdrant_path(), stack.config_dir):
            wipe(path)
        shutil.rmtree(config.repository_path(), ignore_errors=True)
        with drill.step("detected") as step:
            assert not stack.redis.running() and not config.repository_path().exists()
            step.detail = f"services down ({lost}), no local backup"
        with drill.step("services recreated", "docker compose up -d, on a new host") as step:
            step.detail = stack.recreate_redis()
        with drill.step("list off-site", f"bdr list --remote {url}") as step:
            sets = api.list_sets(config, "all", remote=url)
            assert sets and sets[0].id == outcome.manifest.id
            step.detail = f"{len(sets)} system set(s); newest {sets[0].id}"
        with drill.step("restore", f"bdr restore all latest --remote {url}") as step:
            result = api.restore(config, "all", "latest", remote=url)
            step.detail = "; ".join(s.detail for s in result.steps)
        with drill.step("verify") as step:
            assert result.ok, [c for c in result.checks if not c.ok]
            assert api.redis_fingerprint(stack.redis.client()).digest == expected_digest
            assert stack.qdrant_points("memories") == expected_memories
            assert hashlib.sha256((stack.config_dir / ".env").read_bytes()).hexdigest() == env_sha
            step.detail = drill.fingerprints(before, stack.fingerprint("redis", "qdrant", "config"))
        drill.verified()

        drill.rto("offsite_restore")
        for data_type in ("sessions", "rbac", "vectors"):
            drill.rpo(data_type, writer.newest_surviving(data_type, fault), note="newest off-site backup")
        drill.evidence.update(remote=where, url=url, backup_id=outcome.manifest.id,
                              members=outcome.manifest.facts["members"], encrypted=outcome.manifest.encrypted,
                              key_id=outcome.manifest.key_id)
        drill.assert_targets()
