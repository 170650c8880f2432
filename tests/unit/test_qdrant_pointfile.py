"""The logical point file: every vector kind survives a round trip; the hash sees every change."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from qdrant_client import models

from bdr.engines.qdrant.pointfile import (
    Batch,
    ContentHash,
    Layout,
    PointFileReader,
    PointFileWriter,
    batch_from_records,
    encode_batch,
)
from bdr.errors import CorruptArchive

PARAMS = {
    "vectors": {
        "text": {"size": 3, "distance": "Cosine"},
        "colbert": {"size": 2, "distance": "Dot", "multivector_config": {"comparator": "max_sim"}},
    },
    "sparse_vectors": {"keywords": {"modifier": "idf"}},
}
LAYOUT = Layout.from_params(PARAMS)
UUID = "6f1c8f4e-1c1a-4b8e-9a55-0d5b1b0b8a11"


def records() -> list[models.Record]:
    return [
        models.Record(id=1, payload={"b": 1, "a": [1.5, {"y": None, "x": "é"}]}, vector={
            "text": [0.1, 0.2, 0.3], "colbert": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
            "keywords": models.SparseVector(indices=[9, 2], values=[0.5, 0.25])}),
        models.Record(id=UUID, payload=None, vector={"text": [1.0, 0.0, 0.0]}),
        models.Record(id=2**63 + 5, payload={"only": "payload"}, vector={}),
        models.Record(id=3, payload={}, vector={"keywords": models.SparseVector(indices=[], values=[])}),
    ]


def encode(batches: list[Batch], layout: Layout = LAYOUT) -> tuple[bytes, PointFileWriter]:
    writer = PointFileWriter("docs", layout)
    return b"".join(writer.compressed(batches)), writer


def decode(data: bytes) -> tuple[list[Batch], PointFileReader]:
    reader = PointFileReader(io.BytesIO(data), "docs.points.zst")
    return list(reader.batches()), reader


def test_every_vector_kind_round_trips_to_the_same_points() -> None:
    batch = batch_from_records(records(), LAYOUT)
    data, writer = encode([batch])
    batches, reader = decode(data)

    assert reader.collection == "docs" and reader.layout == LAYOUT
    assert (reader.count, reader.content_hash) == (4, writer.content_hash)
    points = {p.id: p for p in batches[0].points(LAYOUT)}
    assert points[1].vector["colbert"] == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]  # type: ignore[index]
    assert points[1].vector["keywords"].indices == [9, 2]  # type: ignore[index]
    assert points[1].vector["text"] == pytest.approx([0.1, 0.2, 0.3])  # type: ignore[index]
    assert points[1].payload == {"a": [1.5, {"x": "é", "y": None}], "b": 1}
    assert points[UUID].vector == {"text": [1.0, 0.0, 0.0]} and points[UUID].payload == {}
    assert points[2**63 + 5].vector == {}
    assert points[3].vector["keywords"].indices == []  # type: ignore[index]


def test_unnamed_vector_is_a_plain_list() -> None:
    layout = Layout.from_params({"vectors": {"size": 2, "distance": "Euclid"}})
    batch = batch_from_records([models.Record(id=7, vector=[1.0, 2.0], payload={"k": 1})], layout)
    (decoded,), _ = decode(encode([batch], layout)[0])
    assert layout.unnamed and decoded.points(layout)[0].vector == [1.0, 2.0]


def test_content_hash_does_not_depend_on_order_or_batching() -> None:
    items = records()
    whole = ContentHash(LAYOUT)
    whole.update(batch_from_records(items, LAYOUT))
    random.Random(3).shuffle(items)
    split = ContentHash(LAYOUT)
    for part in (items[:1], items[1:3], items[3:]):
        split.update(batch_from_records(part, LAYOUT))
    # sparse entries in another order are the same vector
    first = next(r for r in items if r.id == 1)
    first.vector["keywords"] = models.SparseVector(indices=[2, 9], values=[0.25, 0.5])  # type: ignore[index]
    reordered = ContentHash(LAYOUT)
    reordered.update(batch_from_records(items, LAYOUT))
    assert whole.hexdigest() == split.hexdigest() == reordered.hexdigest()


@pytest.mark.parametrize("change", ["payload", "vector bit", "id", "drop a point", "missing named vector"])
def test_content_hash_sees_every_change(change: str) -> None:
    base = ContentHash(LAYOUT)
    base.update(batch_from_records(records(), LAYOUT))
    items = records()
    if change == "payload":
        items[0].payload = {"b": 2, "a": [1.5, {"y": None, "x": "é"}]}
    elif change == "vector bit":
        value = np.float32(0.2)
        items[0].vector["text"][1] = float(np.nextafter(value, np.float32(1)))  # type: ignore[index]
    elif change == "id":
        items[2].id = 4
    elif change == "drop a point":
        items.pop()
    else:
        del items[0].vector["colbert"]  # type: ignore[union-attr]
    other = ContentHash(LAYOUT)
    other.update(batch_from_records(items, LAYOUT))
    assert other.hexdigest() != base.hexdigest()


def test_select_keeps_the_chosen_points_with_their_vectors() -> None:
    batch = batch_from_records(records(), LAYOUT)
    chosen = batch.select([True, False, False, True])
    assert chosen.ids == [1, 3]
    expected = ContentHash(LAYOUT)
    expected.update(batch_from_records([records()[0], records()[3]], LAYOUT))
    got = ContentHash(LAYOUT)
    got.update(chosen)
    assert got.hexdigest() == expected.hexdigest()


def test_a_truncated_file_is_corrupt() -> None:
    data, _ = encode([batch_from_records(records(), LAYOUT)])
    with pytest.raises(CorruptArchive, match=r"zstd|truncated"):
        decode(data[: len(data) // 2])


def test_flipped_bytes_are_caught_by_zstd_checksum() -> None:
    data = bytearray(encode([batch_from_records(records(), LAYOUT)])[0])
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(CorruptArchive):
        decode(bytes(data))


def test_a_re_encoded_batch_that_disagrees_with_the_trailer_is_corrupt() -> None:
    good = batch_from_records(records(), LAYOUT)
    writer = PointFileWriter("docs", LAYOUT)
    raw = b"".join(writer.encode([good]))
    forged_records = records()
    forged_records[0].payload = {"tampered": True}
    forged = encode_batch(batch_from_records(forged_records, LAYOUT))
    start = len(writer.header())
    end = raw.rindex(b"E")
    tampered = raw[:start] + forged + raw[end:]
    import zstandard

    with pytest.raises(CorruptArchive, match="does not match its trailer"):
        decode(zstandard.ZstdCompressor().compress(tampered))


def test_not_a_point_file() -> None:
    import zstandard

    with pytest.raises(CorruptArchive, match="bad magic"):
        decode(zstandard.ZstdCompressor().compress(b"PK\x03\x04 a zip file, not points"))
