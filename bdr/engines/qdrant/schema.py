"""A collection's schema: its configuration and payload indexes, captured and recreated.

What a logical backup records for each collection (in the manifest, as JSON) and what a
restore recreates it from:

- ``config``: the collection config as the instance reports it - vector params (dense,
  named, multi-vector, datatype), sparse vectors (with modifier), distance, sharding
  (shard number, replication, write consistency), on-disk payload, HNSW, optimizer, WAL,
  quantization, strict mode and metadata;
- ``payload_schema``: every payload index (``field -> {data_type, params}``).

The embedded engine (qdrant-client local mode) stores only vectors, sparse vectors,
metadata and text indexes with ``scoring``; the rest of its reported config is fixed
placeholder values, and it ignores other payload indexes. So a collection restored into
the embedded engine is compared on those parts only (:data:`EMBEDDED_SCOPE`).

Configs are JSON from one qdrant-client version and may be read by another: keys the
installed client does not know are dropped (and reported) rather than failing a restore.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic
from qdrant_client import QdrantClient, models

from bdr.engines.qdrant.client import Target, qdrant_errors
from bdr.engines.qdrant.pointfile import Layout
from bdr.errors import ServiceError, UsageError

logger = logging.getLogger(__name__)

EMBEDDED_SCOPE = ("params.vectors", "params.sparse_vectors", "metadata")
"""The parts of a config the embedded engine keeps (compared after restoring into it)."""

_PARAMS_ARGS = ("shard_number", "sharding_method", "replication_factor", "write_consistency_factor",
                "on_disk_payload")


@dataclass(frozen=True, slots=True)
class CollectionSchema:
    """One collection's configuration and payload indexes, as JSON."""

    config: dict[str, Any]
    payload_schema: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = self.config.get("params") or {}
        return params

    @property
    def layout(self) -> Layout:
        return Layout.from_params(self.params)

    @property
    def custom_sharding(self) -> bool:
        return str(self.params.get("sharding_method") or "auto").lower() == "custom"

    def to_facts(self) -> dict[str, Any]:
        return {"config": self.config, "payload_schema": self.payload_schema}

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> CollectionSchema:
        return cls(dict(facts.get("config") or {}), dict(facts.get("payload_schema") or {}))


def describe(client: QdrantClient, target: Target, name: str) -> CollectionSchema:
    """The schema of collection ``name`` as the instance reports it."""
    with qdrant_errors(target, f"describe collection {name!r}"):
        info = client.get_collection(name)
    config = info.config.model_dump(mode="json", exclude_none=True)
    indexes: dict[str, dict[str, Any]] = {}
    for field_name, index in (info.payload_schema or {}).items():
        indexes[field_name] = {
            "data_type": str(getattr(index.data_type, "value", index.data_type)),
            "params": index.params.model_dump(mode="json", exclude_none=True) if index.params else None,
        }
    if target.embedded:
        indexes.update(_embedded_text_indexes(client, name))
    return CollectionSchema(config, indexes)


def _embedded_text_indexes(client: QdrantClient, name: str) -> dict[str, dict[str, Any]]:
    """Local mode reports no payload schema, but keeps text indexes with ``scoring`` (they serve
    text queries); read them from the local collection (no public API exposes them)."""
    local = getattr(client, "_client", None)
    collections = getattr(local, "collections", {}) or {}
    collection = collections.get(name) or collections.get(getattr(local, "aliases", {}).get(name, ""))
    out: dict[str, dict[str, Any]] = {}
    for field_name, params in (getattr(collection, "text_indexes", None) or {}).items():
        out[field_name] = {"data_type": "text", "params": params.model_dump(mode="json", exclude_none=True)}
    return out


# --- recreating ------------------------------------------------------------------------------


@dataclass(slots=True)
class Dropped:
    """Config keys the installed qdrant-client does not accept (from a newer Qdrant)."""

    keys: list[str] = field(default_factory=list)


def _validated(kind: Any, data: Any, where: str, dropped: Dropped) -> Any:
    """``data`` validated as ``kind`` (a model or a union), dropping unknown keys one by one."""
    if data is None:
        return None
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(kind)
    value = _strip_none(data)
    for _ in range(50):
        try:
            return adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            extra = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
            if not extra or not _drop(value, extra):
                raise ServiceError(detail=f"the backup's {where} is not valid for this qdrant-client: "
                                   f"{exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}") from exc
            dropped.keys += [f"{where}.{'.'.join(str(p) for p in loc)}" for loc in extra]
    raise ServiceError(detail=f"the backup's {where} could not be read")  # pragma: no cover


def _drop(value: Any, locations: list[tuple[Any, ...]]) -> bool:
    """Remove each location from ``value`` (skipping union-branch labels pydantic puts in locs)."""
    removed = False
    for loc in locations:
        node = value
        keys = [p for p in loc]
        for i, key in enumerate(keys):
            if isinstance(node, dict) and key in node:
                if i == len(keys) - 1:
                    del node[key]
                    removed = True
                    break
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and key < len(node):
                node = node[key]
            # else: a union member label (e.g. 'ScalarQuantization'): skip it
    return removed


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def create_args(schema: CollectionSchema) -> tuple[dict[str, Any], list[str]]:
    """Keyword arguments of ``QdrantClient.create_collection`` for ``schema``, and dropped keys."""
    dropped = Dropped()
    params = schema.params
    vectors = params.get("vectors") or {}
    if isinstance(vectors, dict) and "size" in vectors:
        vectors_config: Any = _validated(models.VectorParams, vectors, "vectors", dropped)
    else:
        vectors_config = {name: _validated(models.VectorParams, spec, f"vectors.{name}", dropped)
                          for name, spec in vectors.items()}
    args: dict[str, Any] = {"vectors_config": vectors_config}
    sparse = params.get("sparse_vectors")
    if sparse:
        args["sparse_vectors_config"] = {
            name: _validated(models.SparseVectorParams, spec, f"sparse_vectors.{name}", dropped)
            for name, spec in sparse.items()
        }
    for key in _PARAMS_ARGS:
        if params.get(key) is not None:
            args[key] = params[key]
    if args.get("sharding_method") is not None:
        args["sharding_method"] = models.ShardingMethod(args["sharding_method"])
    config = schema.config
    diffs = (("hnsw_config", "hnsw_config", models.HnswConfigDiff),
             ("optimizer_config", "optimizers_config", models.OptimizersConfigDiff),
             ("wal_config", "wal_config", models.WalConfigDiff),
             ("strict_mode_config", "strict_mode_config", models.StrictModeConfig))
    for key, arg, kind in diffs:
        if config.get(key):
            args[arg] = _validated(kind, config[key], key, dropped)
    if config.get("quantization_config"):
        args["quantization_config"] = _validated(models.QuantizationConfig, config["quantization_config"],
                                                 "quantization_config", dropped)
    if config.get("metadata"):
        args["metadata"] = config["metadata"]
    return args, dropped.keys


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # local mode: "payload indexes have no effect"
        yield


def create(client: QdrantClient, target: Target, name: str, schema: CollectionSchema) -> list[str]:
    """Create collection ``name`` with ``schema`` and its payload indexes; returns dropped config keys."""
    if schema.custom_sharding:
        raise UsageError(detail=f"collection {name!r} uses custom sharding (shard keys), which logical "
                         "restores do not support; restore a snapshot backup instead")
    args, dropped = create_args(schema)
    if dropped:
        logger.warning("collection %s: config keys not supported by this qdrant-client were dropped: %s",
                       name, ", ".join(dropped))
    with qdrant_errors(target, f"create collection {name!r}"), _quiet():
        client.create_collection(name, **args)
        for field_name, index in schema.payload_schema.items():
            client.create_payload_index(name, field_name, field_schema=index_schema(index), wait=True)
    return dropped


def index_schema(index: Mapping[str, Any]) -> Any:
    """A payload index's schema argument: its full params when recorded, else its data type."""
    if index.get("params"):
        dropped = Dropped()
        return _validated(models.PayloadSchemaParams, index["params"], "payload index", dropped)
    return models.PayloadSchemaType(index["data_type"])


# --- comparing -------------------------------------------------------------------------------


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is not None:
                out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def config_differences(expected: Mapping[str, Any], live: Mapping[str, Any],
                       scope: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Keys whose value differs between the backup's config and the live one, and keys the live
    instance does not report at all (a target older than the source). ``scope`` limits the
    comparison to these key prefixes (see :data:`EMBEDDED_SCOPE`)."""
    want = _flatten(_strip_none(dict(expected)))
    have = _flatten(_strip_none(dict(live)))
    if scope:
        want = {k: v for k, v in want.items() if any(k == s or k.startswith(s + ".") for s in scope)}
    differ = [f"{k}: backup {want[k]!r}, live {have[k]!r}" for k in sorted(want) if k in have and have[k] != want[k]]
    missing = sorted(k for k in want if k not in have)
    return differ, missing


def live_config(client: QdrantClient, target: Target, name: str) -> dict[str, Any]:
    with qdrant_errors(target, f"describe collection {name!r}"):
        config: dict[str, Any] = client.get_collection(name).config.model_dump(mode="json", exclude_none=True)
    return config
