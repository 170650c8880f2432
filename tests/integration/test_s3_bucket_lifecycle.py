"""``bdr s3 lifecycle show|apply|check`` against a real (moto) bucket that already has rules of its own.

Needs ``tests.s3_fixtures`` as a pytest plugin (top-level conftest, or ``-p tests.s3_fixtures``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError
from click.testing import CliRunner, Result

from bdr.cli.main import cli
from tests.s3_fixtures import S3Bucket

pytestmark = pytest.mark.s3

UNRELATED = {"ID": "logs-expire", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}
OTHER_REPO = {"ID": "bdr:other-site:archive", "Status": "Enabled",
              "Filter": {"And": {"Prefix": "other-site/", "Tags": [{"Key": "bdr-tier", "Value": "data"}]}},
              "Transitions": [{"Days": 10, "StorageClass": "DEEP_ARCHIVE"}]}


def write_config(tmp_path: Path, bucket: S3Bucket, **remote: Any) -> Path:
    path = tmp_path / "bdr.yaml"
    section = {"url": bucket.url("site-a"), "endpoint_url": bucket.server.endpoint, "region": "us-east-1", **remote}
    path.write_text(yaml.safe_dump({"repository": str(tmp_path / "local"), "remote": section}))
    return path


def bdr(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def bucket_rules(bucket: S3Bucket) -> dict[str, dict[str, Any]]:
    rules = bucket.client.get_bucket_lifecycle_configuration(Bucket=bucket.name)["Rules"]
    return {str(r["ID"]): dict(r) for r in rules}


def put_rules(bucket: S3Bucket, *rules: dict[str, Any]) -> None:
    bucket.client.put_bucket_lifecycle_configuration(
        Bucket=bucket.name, LifecycleConfiguration={"Rules": list(rules)})  # type: ignore[typeddict-item,arg-type]


def test_show_prints_the_policy_rules(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    config = write_config(tmp_path, s3_bucket)
    result = bdr(config, "s3", "lifecycle", "show", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["prefix"] == "site-a/"
    rules = {r["ID"]: r for r in shown["rules"]}
    assert rules["bdr:site-a:archive"]["Transitions"] == [{"Days": 90, "StorageClass": "GLACIER"}]
    assert rules["bdr:site-a:expire-index"]["Expiration"] == {"Days": 365}
    assert rules["bdr:site-a:expire-data"]["Expiration"] == {"Days": 366}
    assert rules["bdr:site-a:abort-uploads"]["Filter"] == {"Prefix": "site-a/"}
    with pytest.raises(ClientError, match="NoSuchLifecycleConfiguration"):  # show sends nothing
        s3_bucket.client.get_bucket_lifecycle_configuration(Bucket=s3_bucket.name)

    text = bdr(config, "s3", "lifecycle", "show")
    assert text.exit_code == 0 and "bdr:site-a:archive" in text.stdout


def test_apply_keeps_unrelated_rules_and_check_matches(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    put_rules(s3_bucket, UNRELATED, OTHER_REPO)
    config = write_config(tmp_path, s3_bucket)

    before = bdr(config, "s3", "lifecycle", "check", "--json")
    assert before.exit_code == 1
    assert len(json.loads(before.stdout)["differences"]) == 4  # all four rules missing

    applied = bdr(config, "s3", "lifecycle", "apply", "--json")
    assert applied.exit_code == 0, applied.output
    assert sorted(json.loads(applied.stdout)["kept"]) == ["bdr:other-site:archive", "logs-expire"]

    rules = bucket_rules(s3_bucket)
    assert rules["logs-expire"] == UNRELATED
    assert rules["bdr:other-site:archive"] == OTHER_REPO
    assert rules["bdr:site-a:archive"]["Filter"] == {
        "And": {"Prefix": "site-a/", "Tags": [{"Key": "bdr-tier", "Value": "data"}]}}

    after = bdr(config, "s3", "lifecycle", "check")
    assert after.exit_code == 0, after.output
    assert "matches bdr.yaml" in after.stdout

    assert bdr(config, "s3", "lifecycle", "apply").exit_code == 0  # idempotent
    assert len(bucket_rules(s3_bucket)) == 6


def test_check_reports_drift_and_apply_repairs_it(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    config = write_config(tmp_path, s3_bucket)
    assert bdr(config, "s3", "lifecycle", "apply").exit_code == 0
    rules = bucket_rules(s3_bucket)
    rules["bdr:site-a:archive"]["Transitions"] = [{"Days": 30, "StorageClass": "GLACIER"}]
    del rules["bdr:site-a:expire-data"]
    put_rules(s3_bucket, *rules.values())

    result = bdr(config, "s3", "lifecycle", "check")
    assert result.exit_code == 1
    assert "rule bdr:site-a:archive differs" in result.stdout and "after 30 days" in result.stdout
    assert "rule bdr:site-a:expire-data is missing" in result.stdout
    [error] = result.stderr.strip().splitlines()
    assert "differs from bdr.yaml in 2 rule(s)" in error and "bdr s3 lifecycle apply" in error

    assert bdr(config, "s3", "lifecycle", "apply").exit_code == 0
    assert bdr(config, "s3", "lifecycle", "check").exit_code == 0


def test_a_missing_abort_uploads_rule_is_drift_and_apply_puts_it_back(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    config = write_config(tmp_path, s3_bucket, abort_uploads_after_days=1)
    put_rules(s3_bucket, UNRELATED)
    assert bdr(config, "s3", "lifecycle", "apply").exit_code == 0
    assert bucket_rules(s3_bucket)["bdr:site-a:abort-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1}
    put_rules(s3_bucket, *[r for i, r in bucket_rules(s3_bucket).items() if i != "bdr:site-a:abort-uploads"])

    result = bdr(config, "s3", "lifecycle", "check")
    assert result.exit_code == 1
    assert "rule bdr:site-a:abort-uploads is missing: enabled, prefix 'site-a/': abort uploads after 1 days" \
        in result.stdout

    assert bdr(config, "s3", "lifecycle", "apply").exit_code == 0
    rules = bucket_rules(s3_bucket)
    assert rules["bdr:site-a:abort-uploads"]["Filter"] == {"Prefix": "site-a/"}
    assert rules["logs-expire"] == UNRELATED
    assert bdr(config, "s3", "lifecycle", "check").exit_code == 0


def test_policy_change_in_bdr_yaml_is_a_mismatch(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    assert bdr(write_config(tmp_path, s3_bucket), "s3", "lifecycle", "apply").exit_code == 0

    no_archive = write_config(tmp_path, s3_bucket, archive_after_days=None, expire_after_days=730)
    result = json.loads(bdr(no_archive, "s3", "lifecycle", "check", "--json").stdout)
    assert result["ok"] is False
    assert any("bdr:site-a:archive is in the bucket but not in the policy" in d for d in result["differences"])
    assert any("bdr:site-a:expire-index differs" in d for d in result["differences"])

    assert bdr(no_archive, "s3", "lifecycle", "apply").exit_code == 0
    assert "bdr:site-a:archive" not in bucket_rules(s3_bucket)
    assert bdr(no_archive, "s3", "lifecycle", "check").exit_code == 0


def test_a_foreign_rule_that_deletes_backups_is_warned_about(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    everything = {"ID": "cleanup", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 7}}
    put_rules(s3_bucket, everything)
    config = write_config(tmp_path, s3_bucket)
    assert bdr(config, "s3", "lifecycle", "apply").exit_code == 0
    result = json.loads(bdr(config, "s3", "lifecycle", "check", "--json").stdout)
    assert result["ok"] is True
    assert result["warnings"] == ["rule cleanup also applies to the backups: enabled, prefix '': expire after 7 days"]


def test_no_remote_configured_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "bdr.yaml"
    config.write_text("repository: ./local\n")
    result = bdr(config, "s3", "lifecycle", "check")
    assert result.exit_code == 2
    assert "give --remote s3://bucket/prefix or set remote.url" in result.stderr
