"""The drill catalogue names every scenario module, and each module plays the scenario it is listed under."""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath

import pytest

from bdr.drill import catalogue
from bdr.errors import UsageError
from bdr.lint.files import ConfigKind

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = ROOT / catalogue.DIRECTORY


def drill_names(module: Path) -> set[str]:
    """The scenario names of the module's ``pytest.mark.drill("name", ...)`` marks."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "drill"
                and node.args and isinstance(node.args[0], ast.Constant)):
            found.add(str(node.args[0].value))
    return found


def test_every_scenario_module_is_in_the_catalogue() -> None:
    on_disk = {p.name for p in SCENARIO_DIR.glob("test_*.py")}
    listed = {m for s in catalogue.SCENARIOS for m in s.modules}
    assert on_disk - listed == set(), (
        "scenario modules bdr drill, --list and --changed-since would leave out: add them to bdr/drill/catalogue.py")
    assert listed - on_disk == set(), "the catalogue names modules that do not exist"


def test_each_module_plays_the_scenario_it_is_listed_under() -> None:
    for scenario in catalogue.SCENARIOS:
        for path in scenario.paths:
            assert drill_names(ROOT / path) == {scenario.name}, path


def test_lookups() -> None:
    assert catalogue.scenario("pitr_restore").module_names == ("drills.scenarios.test_pitr_restore",)
    with pytest.raises(UsageError, match=r"unknown scenario.*nosuch; known: redis_restart"):
        catalogue.scenario("nosuch")
    module = PurePosixPath("/ci/checkout/drills/scenarios/test_pitr_freshness.py")
    assert catalogue.of_module(module) == catalogue.scenario("backup_freshness")
    assert catalogue.of_module(PurePosixPath("tests/test_pitr_freshness.py")) is None
    assert [s.name for s in catalogue.affected_by(ConfigKind.POLICY)] == list(catalogue.names())
    assert all(kind in catalogue.WHY for s in catalogue.SCENARIOS for kind in s.affected_by)
