"""What a Qdrant set holds, from its manifest: collections, point counts, vectors, payload indexes, aliases.

A logical set records every collection's configuration, payload indexes, point count and
content hash in its manifest (:mod:`bdr.engines.qdrant.logical`), so nothing needs to be
loaded; a snapshot or volume set records what it knew. ``bdr diff SET live`` asks the live
instance (read-only) for its collections, their point counts (exact) and schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bdr.config import Config
from bdr.inspect.content import Collection, QdrantContent, Vector


def _vectors(config: Mapping[str, Any]) -> tuple[Vector, ...]:
    params = config.get("params") if isinstance(config.get("params"), Mapping) else {}
    assert isinstance(params, Mapping)
    out: list[Vector] = []
    vectors = params.get("vectors")
    if isinstance(vectors, Mapping) and "size" in vectors:
        out.append(_vector("", vectors))
    elif isinstance(vectors, Mapping):
        out += [_vector(str(name), spec) for name, spec in sorted(vectors.items()) if isinstance(spec, Mapping)]
    sparse = params.get("sparse_vectors")
    if isinstance(sparse, Mapping):
        out += [Vector(str(name), "sparse", None, None) for name in sorted(sparse)]
    return tuple(out)


def _vector(name: str, spec: Mapping[str, Any]) -> Vector:
    kind = "multi" if spec.get("multivector_config") else "dense"
    size = spec.get("size")
    return Vector(name, kind, int(size) if isinstance(size, int) else None, spec.get("distance"))


def _indexes(schema: Any) -> dict[str, str]:
    if not isinstance(schema, Mapping):
        return {}
    return {str(field): str(index.get("data_type", "?")) if isinstance(index, Mapping) else str(index)
            for field, index in sorted(schema.items())}


def collection_of(name: str, facts: Mapping[str, Any]) -> Collection:
    config = facts.get("config") if isinstance(facts.get("config"), Mapping) else {}
    assert isinstance(config, Mapping)
    points = facts.get("points")
    return Collection(name, int(points) if isinstance(points, int) else None, _vectors(config),
                      _indexes(facts.get("payload_schema")), facts.get("content_hash"), dict(config))


def from_facts(facts: Mapping[str, Any]) -> QdrantContent:
    collections = facts.get("collections") if isinstance(facts.get("collections"), Mapping) else {}
    assert isinstance(collections, Mapping)
    content = QdrantContent(how=f"the set's manifest ({facts.get('method', 'logical')} method)")
    for name, item in collections.items():
        content.collections[str(name)] = collection_of(str(name), item if isinstance(item, Mapping) else {})
    aliases = facts.get("aliases")
    if isinstance(aliases, Mapping):
        content.aliases = {str(a): str(c) for a, c in aliases.items()}
    return content


def live(config: Config, instance: str | None = None) -> QdrantContent:
    """The live instance's collections (schema and exact point counts), read-only."""
    from bdr.engines.qdrant import schema as qschema
    from bdr.engines.qdrant.client import aliases, connect, list_collections, target_of
    from bdr.engines.qdrant.logical import count_points

    target = target_of(config, instance)
    content = QdrantContent(how=f"the live {target.label()}")
    with connect(target) as client:
        for name in list_collections(client, target):
            schema = qschema.describe(client, target, name)
            content.collections[name] = Collection(name, count_points(client, target, name),
                                                   _vectors(schema.config), _indexes(schema.payload_schema),
                                                   None, dict(schema.config))
        content.aliases = aliases(client, target)
    return content
