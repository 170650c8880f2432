"""Typed restore selections: built from the api's options, checked, kept in the journal and read back."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bdr.engines.selection import (
    EVERYTHING,
    Conflict,
    FilesSelection,
    GrafanaSelection,
    QdrantSelection,
    RedisSelection,
    Selection,
)
from bdr.errors import UsageError, WrongSelection

FILTER = {"must": [{"key": "tenant", "match": {"value": "acme"}}]}


@pytest.mark.parametrize("selection", [
    RedisSelection(keys="user:*", db=2),
    RedisSelection(node="127.0.0.1:7001"),
    QdrantSelection(collection="docs", rename_as="docs_copy", filter=FILTER),
    FilesSelection(root="/srv/restored", paths=("app/*.yaml", "secrets/*")),
    GrafanaSelection(dashboard="agents-overview"),
])
def test_a_selection_survives_the_journal(selection: Selection) -> None:
    assert type(selection).from_state(selection.to_state()) == selection
    assert not selection.empty


# the journal's "selection" as the code before the typed selections wrote it: still resumed
OLD_STATES: list[tuple[type[Selection], dict[str, Any], Selection]] = [
    (RedisSelection, {"keys": "user:*", "db": None}, RedisSelection(keys="user:*")),
    (RedisSelection, {"node": "127.0.0.1:7001"}, RedisSelection(node="127.0.0.1:7001")),
    (QdrantSelection, {"collection": "docs", "as": "acme", "filter": FILTER},
     QdrantSelection(collection="docs", rename_as="acme", filter=FILTER)),
    (FilesSelection, {"root": "out", "paths": ["a/*"]}, FilesSelection(root="out", paths=("a/*",))),
    (GrafanaSelection, {"dashboard": "home"}, GrafanaSelection(dashboard="home")),
    (FilesSelection, {}, FilesSelection()),
]


@pytest.mark.parametrize(("kind", "state", "expected"), OLD_STATES)
def test_a_journal_written_before_reads_back(kind: type[Selection], state: dict[str, Any],
                                             expected: Selection) -> None:
    assert kind.from_state(state) == expected


def test_the_journal_keeps_the_flag_names() -> None:
    assert QdrantSelection(collection="docs", rename_as="acme").to_state() == {"collection": "docs", "as": "acme"}
    assert FilesSelection(paths=("a/*",)).to_state() == {"paths": ["a/*"]}
    assert RedisSelection().to_state() == {}


def test_options_build_the_sources_kind() -> None:
    assert RedisSelection.of("redis", keys="user:*", db=None) == RedisSelection(keys="user:*")
    assert FilesSelection.of("config", paths=["a/*"], root=None) == FilesSelection(paths=("a/*",))
    assert QdrantSelection.of("qdrant").empty


@pytest.mark.parametrize(("kind", "source", "options", "message"), [
    (QdrantSelection, "qdrant", {"keys": "user:*"},
     "bdr restore qdrant selects with --collection, --as, --filter, not --keys"),
    (RedisSelection, "redis", {"rename_as": "copy", "paths": ("x",)},
     "bdr restore redis selects with --keys, --db, --node, not --as, --path"),
    (Selection, "prometheus", {"dashboard": "home"},
     "bdr restore prometheus selects with nothing (it restores everything), not --dashboard"),
])
def test_an_option_of_another_source_is_refused(kind: type[Selection], source: str, options: dict[str, Any],
                                                message: str) -> None:
    with pytest.raises(WrongSelection) as caught:
        kind.of(source, **options)
    assert caught.value.message == message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(("kind", "options", "message"), [
    (RedisSelection, {"db": 3}, "--db only applies with --keys"),
    (RedisSelection, {"keys": "a", "node": "h:1"}, "--node brings a lost node back whole: it takes no --keys"),
    (RedisSelection, {"keys": "a", "db": -1}, "--db must be a database number (0, 1, ...), got -1"),
    (QdrantSelection, {"rename_as": "copy"}, "--as needs --collection"),
    (QdrantSelection, {"filter": ["tenant"]}, "--filter must be a JSON object"),
])
def test_a_meaningless_combination_is_a_usage_error(kind: type[Selection], options: dict[str, Any],
                                                    message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        kind.of("source", **options)


def test_an_engine_takes_everything_or_its_own_kind() -> None:
    mine = RedisSelection(keys="user:*")
    assert RedisSelection.expect(mine, "redis") is mine
    assert RedisSelection.expect(EVERYTHING, "redis") == RedisSelection()
    assert Selection.expect(EVERYTHING, "prometheus") == EVERYTHING
    with pytest.raises(WrongSelection, match=r"bdr restore qdrant selects with .* not --keys"):
        QdrantSelection.expect(mine, "qdrant")
    with pytest.raises(WrongSelection, match="bdr restore prometheus selects with nothing"):
        Selection.expect(GrafanaSelection(dashboard="home"), "prometheus")


def test_conflict_is_an_enum_with_a_clear_error() -> None:
    assert Conflict.of("skip") is Conflict.SKIP
    assert Conflict.of(Conflict.REPLACE) is Conflict.REPLACE
    with pytest.raises(UsageError, match="--conflict must be one of fail, skip, replace, got 'merge'"):
        Conflict.of("merge")


def test_a_request_refuses_a_bag_of_strings(tmp_path: Any) -> None:
    from bdr.config import Config
    from bdr.engines.base import RestoreRequest
    from bdr.repository import Repository

    config = Config(repository=str(tmp_path))
    request = RestoreRequest(config=config, repository=Repository.open(tmp_path), backup=None,
                             conflict="skip")  # type: ignore[arg-type]
    assert request.conflict is Conflict.SKIP and request.selection.empty
    with pytest.raises(UsageError, match=re.escape("a restore's selection is a bdr.engines.selection.Selection")):
        RestoreRequest(config=config, repository=Repository.open(tmp_path), backup=None,
                       selection={"keys": "user:*"})  # type: ignore[arg-type]
