"""Which Qdrant versions a snapshot may be restored into."""

from __future__ import annotations

import pytest

from bdr.engines.qdrant.snapshot import parse_version, snapshot_file, version_problem


@pytest.mark.parametrize(("source", "target"), [("1.12.4", "1.12.0"), ("1.12.4", "1.13.2"), ("v1.9.0", "1.9.7")])
def test_same_or_next_minor_is_accepted(source: str, target: str) -> None:
    assert version_problem(source, target) is None


@pytest.mark.parametrize(("source", "target", "why"), [
    ("1.12.4", "1.14.0", "upgrade step by step"),
    ("1.13.0", "1.12.9", "older Qdrant"),
    ("1.12.0", "2.0.0", "major version"),
    (None, "1.12.0", "does not record"),
    ("embedded qdrant-client 1.12.0", "1.12.0", "does not record"),
])
def test_other_versions_are_refused_with_a_reason(source: str | None, target: str, why: str) -> None:
    problem = version_problem(source, target)
    assert problem is not None and why in problem


def test_parse_version() -> None:
    assert parse_version("1.12") == (1, 12, 0)
    assert parse_version("nonsense") is None


def test_snapshot_files_live_under_snapshots() -> None:
    assert snapshot_file("docs") == "snapshots/docs.snapshot.zst"
