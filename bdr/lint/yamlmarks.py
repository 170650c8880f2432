"""YAML with line numbers: mappings and lists that remember where each entry was written.

PyYAML's composer knows the line of every node; the plain loaders throw it away. This
loader builds :class:`MarkedDict` / :class:`MarkedList` (ordinary dicts and lists) that also
carry the 1-based line of the container and of each key or item, so a finding can point at
``docker-compose.yml:14``. Anchors, aliases and ``<<`` merge keys work as in ``safe_load``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class MarkedDict(dict[Any, Any]):
    """A mapping that knows its own line and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        lines: dict[Any, int] = getattr(self, "key_lines", {})
        return lines.get(key, self.line)


class MarkedList(list[Any]):
    """A sequence that knows its own line and the line of each item."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        lines: list[int] = getattr(self, "item_lines", [])
        return lines[index] if 0 <= index < len(lines) else self.line


class _MarkedLoader(yaml.SafeLoader):
    pass


def _mapping(loader: _MarkedLoader, node: yaml.MappingNode) -> MarkedDict:
    loader.flatten_mapping(node)
    result = MarkedDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            key = str(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _sequence(loader: _MarkedLoader, node: yaml.SequenceNode) -> MarkedList:
    result = MarkedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


@dataclass(frozen=True, slots=True)
class YamlProblem:
    """Why a YAML file could not be read, and where."""

    line: int | None
    detail: str


def load_marked(path: Path) -> Any:
    """The document in ``path`` with line marks; raises :class:`YamlError` for invalid YAML."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise YamlError(YamlProblem(None, f"cannot read: {exc.strerror or exc}")) from exc
    return load_marked_text(text)


def load_marked_text(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_MarkedLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlError(YamlProblem(mark.line + 1 if mark else None, f"invalid YAML: {problem}")) from exc


class YamlError(ValueError):
    """A YAML file that does not parse; ``problem`` says where."""

    def __init__(self, problem: YamlProblem) -> None:
        super().__init__(problem.detail)
        self.problem = problem
