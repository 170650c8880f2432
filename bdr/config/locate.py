"""Where a key of a YAML file is: the line of ``redis.production.runtime`` in ``bdr.yaml``.

A message names a setting by its key path; the operator's editor wants a line. The file is
composed (not constructed) into YAML nodes, which keep their position, and the path is
followed as deep as it goes: the line of the deepest key found.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import yaml

_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def path_of(dotted: str) -> tuple[str | int, ...]:
    """``drill.redis.checks[0]`` as ``("drill", "redis", "checks", 0)``."""
    return tuple(int(index) if index else key for index, key in _PART.findall(dotted))


def line_of(text: str, loc: Sequence[str | int]) -> int | None:
    """The 1-based line of the deepest key of ``loc`` in the YAML ``text`` (None when not even the first is there)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line: int | None = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((key, value) for key, value in node.value
                          if isinstance(key, yaml.ScalarNode) and key.value == str(part)), None)
            if found is None:
                break
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
