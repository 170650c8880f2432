"""Collection configs across qdrant-client versions, config comparison, and the point-by-point check."""

from __future__ import annotations

import numpy as np
import pytest
from qdrant_client import models

from bdr.engines.qdrant.logical import Comparison, compare_batches, points_file
from bdr.engines.qdrant.pointfile import Layout, batch_from_records
from bdr.engines.qdrant.schema import CollectionSchema, config_differences, create_args, index_schema
from bdr.errors import ServiceError

SERVER_CONFIG = {
    "params": {
        "vectors": {"size": 384, "distance": "Cosine", "on_disk": True, "datatype": "float16"},
        "shard_number": 2,
        "replication_factor": 1,
        "write_consistency_factor": 1,
        "on_disk_payload": True,
        "sparse_vectors": {"bm25": {"modifier": "idf", "index": {"on_disk": False}}},
    },
    "hnsw_config": {"m": 32, "ef_construct": 200, "full_scan_threshold": 10000, "max_indexing_threads": 0},
    "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000, "default_segment_number": 0,
                         "indexing_threshold": 20000, "flush_interval_sec": 5},
    "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
    "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}},
    "metadata": {"team": "search"},
}


def test_create_args_carry_every_part_of_a_server_config() -> None:
    args, dropped = create_args(CollectionSchema(SERVER_CONFIG))
    assert dropped == []
    assert args["vectors_config"].size == 384 and args["vectors_config"].datatype == models.Datatype.FLOAT16
    assert args["sparse_vectors_config"]["bm25"].modifier == models.Modifier.IDF
    assert (args["shard_number"], args["on_disk_payload"]) == (2, True)
    assert args["hnsw_config"].m == 32 and args["optimizers_config"].indexing_threshold == 20000
    assert args["quantization_config"].scalar.type == models.ScalarType.INT8
    assert args["metadata"] == {"team": "search"}


def test_keys_from_a_newer_qdrant_are_dropped_and_reported() -> None:
    newer = {**SERVER_CONFIG, "hnsw_config": {**SERVER_CONFIG["hnsw_config"], "future_knob": 3},  # type: ignore[dict-item]
             "params": {**SERVER_CONFIG["params"],  # type: ignore[dict-item]
                        "vectors": {"size": 4, "distance": "Dot", "quantum": {"x": 1}}}}
    args, dropped = create_args(CollectionSchema(newer))
    assert sorted(dropped) == ["hnsw_config.future_knob", "vectors.quantum"]
    assert args["hnsw_config"].m == 32 and args["vectors_config"].size == 4


def test_an_invalid_value_is_a_clear_error() -> None:
    broken = {"params": {"vectors": {"size": "big", "distance": "Cosine"}}}
    with pytest.raises(ServiceError, match="vectors is not valid for this qdrant-client"):
        create_args(CollectionSchema(broken))


def test_payload_index_schema_from_params_or_type() -> None:
    text = index_schema({"data_type": "text", "params": {"type": "text", "tokenizer": "word", "lowercase": True}})
    assert isinstance(text, models.TextIndexParams) and text.tokenizer == models.TokenizerType.WORD
    assert index_schema({"data_type": "keyword", "params": None}) == models.PayloadSchemaType.KEYWORD


def test_config_differences_ignore_what_the_target_adds_but_name_what_differs() -> None:
    live = {**SERVER_CONFIG, "hnsw_config": {**SERVER_CONFIG["hnsw_config"], "m": 16, "new_default": 1}}  # type: ignore[dict-item]
    differ, missing = config_differences(SERVER_CONFIG, live)
    assert differ == ["hnsw_config.m: backup 32, live 16"] and missing == []
    older = {k: v for k, v in SERVER_CONFIG.items() if k != "metadata"}
    assert config_differences(SERVER_CONFIG, older) == ([], ["metadata.team"])
    embedded_scope = ("params.vectors", "params.sparse_vectors", "metadata")
    assert config_differences(SERVER_CONFIG, live, embedded_scope) == ([], [])


def test_layout_of_named_multi_and_sparse_vectors() -> None:
    layout = Layout.from_params({"vectors": {"b": {"size": 2, "distance": "Dot", "multivector_config": {
        "comparator": "max_sim"}}, "a": {"size": 3, "distance": "Cosine"}}, "sparse_vectors": {"c": {}}})
    assert [(s.name, str(s.kind), s.size) for s in layout.vectors] == [("a", "dense", 3), ("b", "multi", 2),
                                                                       ("c", "sparse", 0)]
    assert not layout.unnamed


def test_point_files_have_safe_names() -> None:
    assert points_file("docs-v2_1.0") == "collections/docs-v2_1.0.points.zst"
    odd = points_file("../etc/passwd")
    assert odd.startswith("collections/c-") and "/" not in odd.removeprefix("collections/")


LAYOUT = Layout.from_params({"vectors": {"cos": {"size": 3, "distance": "Cosine"},
                                         "dot": {"size": 3, "distance": "Dot"}}})


def _batch(cos: list[float], dot: list[float], payload: dict[str, int] | None = None) -> object:
    return batch_from_records([models.Record(id=1, vector={"cos": cos, "dot": dot}, payload=payload or {"a": 1})],
                              LAYOUT)


def _one_ulp(values: list[float]) -> list[float]:
    first = np.float32(values[0])
    return [float(np.nextafter(first, np.float32(2))), *values[1:]]


def test_a_re_normalized_cosine_vector_is_equal_within_tolerance() -> None:
    cos, dot = [0.6, 0.8, 0.0], [1.0, 2.0, 3.0]
    result = Comparison()
    compare_batches(_batch(cos, dot), _batch(_one_ulp(cos), dot), result)  # type: ignore[arg-type]
    assert result.ok and result.renormalized == 1


@pytest.mark.parametrize("change", ["dot vector by one ulp", "cosine vector by a lot", "payload"])
def test_other_differences_are_differences(change: str) -> None:
    cos, dot = [0.6, 0.8, 0.0], [1.0, 2.0, 3.0]
    live = {"dot vector by one ulp": (cos, _one_ulp(dot), None), "cosine vector by a lot": ([0.0, 0.8, 0.6], dot,
            None), "payload": (cos, dot, {"a": 2})}[change]
    result = Comparison()
    compare_batches(_batch(cos, dot), _batch(*live), result)  # type: ignore[arg-type]
    assert not result.ok and len(result.different) == 1
