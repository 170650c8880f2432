"""bdr.registry.Registry: one entry per name, built-ins imported only when looked up, unknown names listed;
and the source catalogue (bdr.sources) that every list of sources derives from."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import click
import pytest

from bdr.registry import DuplicateEntry, Registry, UnknownEntry
from bdr.repository.manifest import Manifest


def test_a_second_entry_under_one_name_is_refused_naming_both() -> None:
    reg: Registry[str] = Registry("colour")
    reg.register("red", "first")
    with pytest.raises(DuplicateEntry, match=r"colour 'red' is registered twice \('first' and 'second'\)"):
        reg.register("red", "second")
    assert reg.get("red") == "first"


def test_unknown_names_list_the_known_ones() -> None:
    reg: Registry[int] = Registry("number", {"lazy": "no.such.module"})
    reg.register("one", 1)
    assert reg.find("two") is None
    with pytest.raises(UnknownEntry, match=r"unknown number 'two'; one of lazy, one") as raised:
        reg.get("two")
    assert raised.value.known == ["lazy", "one"]


def test_a_builtin_module_is_imported_on_its_first_lookup_only(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "h1_lazy_entry.py").write_text(textwrap.dedent("""
        from tests_h1_registry import REG
        REG.register("lazy", "from the module")
    """))
    (tmp_path / "h1_attr_entry.py").write_text("ENTRY = 'an attribute'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[str] = Registry("thing", {"lazy": "h1_lazy_entry"})
    by_attribute: Registry[str] = Registry("thing", {"attr": "h1_attr_entry"}, attribute="ENTRY")
    holder = type(sys)("tests_h1_registry")
    holder.REG = reg  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests_h1_registry", holder)
    assert reg.names() == ["lazy"] and "lazy" in reg
    assert "h1_lazy_entry" not in sys.modules and "h1_attr_entry" not in sys.modules
    assert reg.get("lazy") == "from the module"
    assert "h1_lazy_entry" in sys.modules
    assert by_attribute.find("attr") == "an attribute"
    for name in ("h1_lazy_entry", "h1_attr_entry"):
        monkeypatch.delitem(sys.modules, name)


def test_reading_the_configuration_and_the_catalogues_imports_no_engine_sdk() -> None:
    code = ("import sys; import bdr.sources, bdr.engines, bdr.runtime, bdr.storage, bdr.config, bdr.cli.options;"
            "bdr.config.parse_config({}); bdr.engines.known_sources(); bdr.runtime.runtime_names('redis');"
            "print(sorted(m for m in ('boto3', 'docker', 'qdrant_client', 'bdr.engines.redis', 'bdr.storage.s3')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the source catalogue: adding a source is one engine package + one Source entry ------------------


def test_every_list_of_sources_agrees_with_the_catalogue() -> None:
    from bdr import repository
    from bdr.api.system import MEMBERS, OPTIONAL_MEMBERS
    from bdr.cli.main import cli
    from bdr.config import Config
    from bdr.drill.settings import DRILL_SOURCES, LIVE_SOURCES, OBSERVED_SOURCES
    from bdr.engines import engine_for, known_sources
    from bdr.lint.policy import KNOWN_SOURCES
    from bdr.monitoring import status
    from bdr.sources import ALL, all_sources, source_names

    names = source_names()
    assert names == ("redis", "qdrant", "config", "prometheus", "grafana")
    assert known_sources() == list(names)
    for entry in all_sources():  # each catalogue entry names a module whose ENGINE backs that source up
        engine = engine_for(entry.name)
        assert engine.__module__.startswith(entry.engine) and callable(engine.backup) and callable(engine.restore)
    assert repository.SOURCES == KNOWN_SOURCES == (*names, ALL)
    backup = cli.commands["backup"]
    choice = next(p.type for p in backup.params if isinstance(p.type, click.Choice))
    assert tuple(choice.choices) == (*names, ALL)
    assert set(MEMBERS) | set(OPTIONAL_MEMBERS) == set(names)
    assert set(LIVE_SOURCES) | set(OBSERVED_SOURCES) == set(DRILL_SOURCES) == set(names)
    config = Config()
    for entry in all_sources():
        assert hasattr(config, entry.section)
        assert status.default_instance(config, entry.name) == entry.default_instance(config)
    assert status.default_instance(config, "redis") == "production"


def test_the_schedule_and_whole_system_set_follow_the_catalogue() -> None:
    from bdr.api.system import members_of
    from bdr.config import parse_config
    from bdr.schedule.jobs import instances_of

    config = parse_config({"qdrant": {"production": {"path": "./q"}, "test": {"path": "./t", "backup": False}}})
    assert members_of(config) == ("config", "redis", "qdrant")
    assert instances_of(config, "qdrant") == ["production"]
    assert instances_of(config, "config") == [config.files.name]
    assert instances_of(config, "prometheus") == []
    assert instances_of(config, "all") == ["system"]


# --- Qdrant methods: a selective restore asks the set's method where its points are ------------------


def _qdrant_set(method: str, **facts: Any) -> Manifest:
    return Manifest(id=f"qdrant-20250124T020000Z-{method}", source="qdrant", instance="production", method=method,
                    started_at="2025-01-24T02:00:00.000000Z", finished_at="2025-01-24T02:00:03.250000Z",
                    files=(), objects=(), facts={"method": method, **facts})


def test_each_qdrant_method_says_where_a_selective_restore_reads_its_points(tmp_path: Path) -> None:
    from bdr.engines.qdrant.methods import known_methods, method_for
    from bdr.errors import UsageError

    assert known_methods() == ["logical", "snapshot", "volume"]
    facts = {"file": "collections/docs.points"}
    origin = method_for("logical").point_origin(_qdrant_set("logical"), tmp_path, facts, tmp_path / "w")
    assert origin.file == tmp_path / "collections/docs.points" and origin.target is None
    embedded = method_for("volume").point_origin(_qdrant_set("volume", mode="embedded"), tmp_path, facts, tmp_path)
    assert embedded.target is not None and embedded.target.instance.path == str(tmp_path / "storage")
    with pytest.raises(UsageError, match="volume backup of a Qdrant server's storage directory; selective restores "
                       "need a logical, snapshot or embedded volume backup"):
        method_for("volume").point_origin(_qdrant_set("volume", mode="server"), tmp_path, facts, tmp_path)
    with pytest.raises(UsageError, match="unknown Qdrant method 'tape'; one of logical, snapshot, volume"):
        method_for("tape")
