"""The logical point file: one collection's points, streamed in compact binary batches.

A logical backup stores each collection as one object, ``collections/<name>.points.zst``:
a zstd stream (with zstd's own content checksum) of

::

    magic      b"BDRQPTS\\x01"
    header     u32 length + JSON {"format": 1, "collection": ..., "unnamed": bool,
                                  "vectors": [{"name", "kind", "size", "distance"}, ...]}
    batches    b"B" + u64 length + body, one per scroll batch (1024 points by default)
    trailer    b"E" + u64 point count + 32-byte content hash

and a batch body is columnar, little-endian, numpy-friendly::

    u32 n
    u8[n]      id kinds (0 = unsigned integer, 1 = UUID)
    u8[16n]    ids (u64 in the first 8 bytes, or the UUID's 16 bytes)
    u32[n]     payload lengths, then the payloads (canonical JSON, see below)
    per vector, in header order:
      u8[n]    present (a point may lack a named vector)
      dense    f32[k * size]
      multi    u32[k] rows, f32[rows * size]
      sparse   u32[k] nnz, u32[nnz] indices, f32[nnz] values

Vectors are float32 whatever their storage datatype (float16 and uint8 values are exact in
float32): what a Qdrant server stores. qdrant-client's local mode is looser: it keeps vectors
given as Python floats at float64 precision, and it persists cosine vectors as given
(normalizing them in memory on insert, not when it loads them), so a fresh client - which
is what bdr always opens - reads the persisted vectors; a logical backup holds those,
rounded to float32. The unnamed default vector has the name ``""``.

**Content hash** (``sha256-adhash-v1``), order-independent so that scroll order, shard count
and parallel import cannot change it: each point is encoded canonically - its id
(``b"i"`` + u64 or ``b"u"`` + UUID bytes), then per vector in name order ``b"\\0"`` when
absent or ``b"\\1"`` + data (dense: f32 values; multi: u32 rows + f32 values; sparse: u32
nnz + indices sorted ascending + their f32 values), then u32 length + payload as canonical
JSON (keys sorted, ``","``/``":"`` separators, UTF-8); its sha256, read as a 256-bit integer,
is added modulo 2**256 to a running sum; the collection hash is sha256 of
``b"bdr-qdrant-points-v1"`` + the vector layout (JSON) + u64 count + the 32-byte sum.
Point ids are unique within a collection, so the sum is a sound multiset hash.

A file that ends before its trailer, or whose recomputed count or hash disagrees with the
trailer, raises :class:`~bdr.errors.CorruptArchive`.
"""

from __future__ import annotations

import hashlib
import json
import struct
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import zstandard

from bdr.errors import CorruptArchive

MAGIC = b"BDRQPTS\x01"
FORMAT = 1
HASH_NAME = "sha256-adhash-v1"
HASH_DOMAIN = b"bdr-qdrant-points-v1"
ZSTD_LEVEL = 3
CHUNK = 1 << 20
_MASK = (1 << 256) - 1
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

FloatArray = npt.NDArray[np.float32]
UIntArray = npt.NDArray[np.uint32]
BoolArray = npt.NDArray[np.bool_]
PointId = int | str


class VectorKind(StrEnum):
    DENSE = "dense"
    MULTI = "multi"
    SPARSE = "sparse"


@dataclass(frozen=True, slots=True)
class VectorSpec:
    """One vector of a collection: its name (``""`` = the unnamed default), kind and size."""

    name: str
    kind: VectorKind
    size: int = 0
    distance: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": str(self.kind), "size": self.size, "distance": self.distance}


@dataclass(frozen=True, slots=True)
class Layout:
    """The vectors a collection's points carry, in name order."""

    vectors: tuple[VectorSpec, ...]
    unnamed: bool = False
    """The collection has one unnamed dense vector (a point's ``vector`` is a plain list)."""

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Layout:
        """The layout of a collection from its config's ``params`` (as JSON)."""
        specs: list[VectorSpec] = []
        vectors = params.get("vectors") or {}
        unnamed = isinstance(vectors, dict) and "size" in vectors
        named = {"": vectors} if unnamed else dict(vectors)
        for name, spec in named.items():
            kind = VectorKind.MULTI if spec.get("multivector_config") else VectorKind.DENSE
            specs.append(VectorSpec(str(name), kind, int(spec["size"]), _distance(spec.get("distance"))))
        for name in (params.get("sparse_vectors") or {}):
            specs.append(VectorSpec(str(name), VectorKind.SPARSE))
        specs.sort(key=lambda s: s.name)
        return cls(tuple(specs), unnamed)

    def to_dict(self) -> dict[str, Any]:
        return {"unnamed": self.unnamed, "vectors": [s.to_dict() for s in self.vectors]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        specs = tuple(
            VectorSpec(str(v["name"]), VectorKind(v["kind"]), int(v.get("size") or 0), v.get("distance"))
            for v in data["vectors"]
        )
        return cls(specs, bool(data.get("unnamed")))

    def key(self) -> bytes:
        """What of the layout enters the content hash: names, kinds and sizes."""
        return json.dumps([[s.name, str(s.kind), s.size] for s in self.vectors], separators=(",", ":")).encode()


def _distance(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


# --- canonical values ----------------------------------------------------------------------------


def canonical_id(value: Any) -> PointId:
    """An int id as int, a UUID id as its lowercase hyphenated string (what Qdrant returns)."""
    if isinstance(value, bool):
        raise ValueError(f"invalid point id {value!r}")
    if isinstance(value, int):
        return value
    return str(uuid.UUID(str(value)))


def canonical_payload(payload: Any) -> bytes:
    """A payload as canonical JSON bytes (no payload = ``{}``)."""
    return json.dumps(payload or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def id_bytes(point_id: PointId) -> bytes:
    if isinstance(point_id, int):
        return b"i" + _U64.pack(point_id)
    return b"u" + uuid.UUID(point_id).bytes


# --- batches ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Column:
    """One vector of every point of a batch; ``present[i]`` says whether point i has it."""

    spec: VectorSpec
    present: BoolArray
    data: FloatArray
    """dense: (k, size); multi: (total rows, size); sparse: (total nnz,) values."""
    counts: UIntArray = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))
    """multi: rows per present point; sparse: nnz per present point."""
    indices: UIntArray = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))
    """sparse: the indices, concatenated."""

    def per_point(self) -> list[Any]:
        """Each point's vector as qdrant-client takes it (None where absent)."""
        out: list[Any] = [None] * len(self.present)
        where = np.flatnonzero(self.present)
        if self.spec.kind is VectorKind.DENSE:
            for i, row in zip(where, self.data.tolist(), strict=True):
                out[i] = row
            return out
        offsets = np.concatenate(([0], np.cumsum(self.counts, dtype=np.int64)))
        if self.spec.kind is VectorKind.MULTI:
            for k, i in enumerate(where):
                out[i] = self.data[offsets[k]:offsets[k + 1]].tolist()
            return out
        from qdrant_client import models

        for k, i in enumerate(where):
            a, b = offsets[k], offsets[k + 1]
            out[i] = models.SparseVector(indices=self.indices[a:b].tolist(), values=self.data[a:b].tolist())
        return out

    def point_bytes(self) -> list[bytes]:
        """Each point's canonical encoding of this vector for the content hash."""
        out = [b"\0"] * len(self.present)
        where = np.flatnonzero(self.present)
        if self.spec.kind is VectorKind.DENSE:
            for k, i in enumerate(where):
                out[i] = b"\1" + self.data[k].tobytes()
            return out
        offsets = np.concatenate(([0], np.cumsum(self.counts, dtype=np.int64)))
        if self.spec.kind is VectorKind.MULTI:
            for k, i in enumerate(where):
                out[i] = b"\1" + _U32.pack(int(self.counts[k])) + self.data[offsets[k]:offsets[k + 1]].tobytes()
            return out
        for k, i in enumerate(where):
            a, b = offsets[k], offsets[k + 1]
            idx = self.indices[a:b]
            order = np.argsort(idx, kind="stable")
            out[i] = b"\1" + _U32.pack(int(b - a)) + idx[order].tobytes() + self.data[a:b][order].tobytes()
        return out


@dataclass(slots=True)
class Batch:
    """A batch of points, column by column."""

    ids: list[PointId]
    payloads: list[bytes]
    columns: list[Column]

    def __len__(self) -> int:
        return len(self.ids)

    def digests(self) -> list[bytes]:
        """sha256 of each point's canonical encoding."""
        per_vector = [c.point_bytes() for c in self.columns]
        out = []
        for i, point_id in enumerate(self.ids):
            h = hashlib.sha256(id_bytes(point_id))
            for encoded in per_vector:
                h.update(encoded[i])
            payload = self.payloads[i]
            h.update(_U32.pack(len(payload)))
            h.update(payload)
            out.append(h.digest())
        return out

    def vectors(self, layout: Layout) -> list[Any]:
        """Each point's ``vector`` argument for qdrant-client."""
        columns = [(c.spec.name, c.per_point()) for c in self.columns]
        out: list[Any] = []
        for i in range(len(self.ids)):
            if layout.unnamed:
                out.append(columns[0][1][i] if columns else {})
                continue
            out.append({name: values[i] for name, values in columns if values[i] is not None})
        return out

    def points(self, layout: Layout) -> list[Any]:
        """The batch as qdrant-client ``PointStruct``\\s."""
        from qdrant_client import models

        return [
            models.PointStruct(id=point_id, vector=vector, payload=json.loads(payload))
            for point_id, vector, payload in zip(self.ids, self.vectors(layout), self.payloads, strict=True)
        ]

    def select(self, keep: Sequence[bool] | BoolArray) -> Batch:
        """The points where ``keep`` is true."""
        mask = np.asarray(keep, dtype=bool)
        columns = []
        for c in self.columns:
            sub_present = c.present[mask]
            rank = np.cumsum(c.present) - 1
            chosen = rank[mask & c.present]
            if c.spec.kind is VectorKind.DENSE:
                columns.append(Column(c.spec, sub_present, c.data[chosen]))
                continue
            offsets = np.concatenate(([0], np.cumsum(c.counts, dtype=np.int64)))
            pieces = [np.arange(offsets[k], offsets[k + 1]) for k in chosen]
            take = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
            indices = c.indices[take] if c.spec.kind is VectorKind.SPARSE else c.indices
            columns.append(Column(c.spec, sub_present, c.data[take], c.counts[chosen], indices))
        ids = [p for p, k in zip(self.ids, mask, strict=True) if k]
        payloads = [p for p, k in zip(self.payloads, mask, strict=True) if k]
        return Batch(ids, payloads, columns)


def batch_from_records(records: Sequence[Any], layout: Layout) -> Batch:
    """A batch from qdrant-client (or qdrant-edge) records that carry ``id``, ``vector``, ``payload``."""
    ids = [canonical_id(r.id) for r in records]
    payloads = [canonical_payload(r.payload) for r in records]
    columns = []
    for spec in layout.vectors:
        values = [_vector_of(r.vector, spec.name, layout.unnamed) for r in records]
        present = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
        got = [v for v in values if v is not None]
        if spec.kind is VectorKind.DENSE:
            data = np.asarray(got, dtype=np.float32).reshape(len(got), spec.size)
            columns.append(Column(spec, present, data))
        elif spec.kind is VectorKind.MULTI:
            counts = np.fromiter((len(v) for v in got), dtype=np.uint32, count=len(got))
            rows = [row for v in got for row in v]
            data = np.asarray(rows, dtype=np.float32).reshape(len(rows), spec.size)
            columns.append(Column(spec, present, data, counts))
        else:
            counts = np.fromiter((len(v.indices) for v in got), dtype=np.uint32, count=len(got))
            indices = np.fromiter((i for v in got for i in v.indices), dtype=np.uint32, count=int(counts.sum()))
            data = np.fromiter((x for v in got for x in v.values), dtype=np.float32, count=int(counts.sum()))
            columns.append(Column(spec, present, data, counts, indices))
    return Batch(ids, payloads, columns)


def _vector_of(vector: Any, name: str, unnamed: bool) -> Any:
    if vector is None:
        return None
    if isinstance(vector, dict):
        return vector.get(name)
    if isinstance(vector, list | tuple | np.ndarray):
        return vector if name == "" else None
    return None


# --- the content hash ------------------------------------------------------------------------------


@dataclass(slots=True)
class ContentHash:
    """The order-independent content hash of a set of points (see the module docstring)."""

    layout: Layout
    count: int = 0
    total: int = 0

    def add(self, digests: Iterable[bytes]) -> None:
        total = self.total
        for digest in digests:
            total += int.from_bytes(digest, "big")
            self.count += 1
        self.total = total & _MASK

    def update(self, batch: Batch) -> None:
        self.add(batch.digests())

    def hexdigest(self) -> str:
        h = hashlib.sha256(HASH_DOMAIN)
        h.update(self.layout.key())
        h.update(_U64.pack(self.count))
        h.update(self.total.to_bytes(32, "big"))
        return h.hexdigest()


# --- writing ---------------------------------------------------------------------------------------


def _encode_ids(ids: Sequence[PointId]) -> tuple[bytes, bytes]:
    kinds = bytearray(len(ids))
    raw = bytearray(16 * len(ids))
    for i, point_id in enumerate(ids):
        if isinstance(point_id, int):
            raw[16 * i:16 * i + 8] = _U64.pack(point_id)
        else:
            kinds[i] = 1
            raw[16 * i:16 * i + 16] = uuid.UUID(point_id).bytes
    return bytes(kinds), bytes(raw)


def encode_batch(batch: Batch) -> bytes:
    n = len(batch)
    kinds, raw_ids = _encode_ids(batch.ids)
    lengths = np.fromiter((len(p) for p in batch.payloads), dtype="<u4", count=n)
    parts = [_U32.pack(n), kinds, raw_ids, lengths.tobytes(), b"".join(batch.payloads)]
    for column in batch.columns:
        parts.append(column.present.astype(np.uint8).tobytes())
        if column.spec.kind is not VectorKind.DENSE:
            parts.append(column.counts.astype("<u4").tobytes())
        if column.spec.kind is VectorKind.SPARSE:
            parts.append(column.indices.astype("<u4").tobytes())
        parts.append(column.data.astype("<f4").tobytes())
    body = b"".join(parts)
    return b"B" + _U64.pack(len(body)) + body


class PointFileWriter:
    """Encodes batches into the point file format; ``count`` and ``content_hash`` once done."""

    def __init__(self, collection: str, layout: Layout) -> None:
        self.collection = collection
        self.layout = layout
        self.hash = ContentHash(layout)

    def header(self) -> bytes:
        data = {"format": FORMAT, "collection": self.collection, **self.layout.to_dict()}
        raw = json.dumps(data, sort_keys=True).encode()
        return MAGIC + _U32.pack(len(raw)) + raw

    def encode(self, batches: Iterable[Batch]) -> Iterator[bytes]:
        """The uncompressed file, piece by piece."""
        yield self.header()
        for batch in batches:
            if len(batch):
                self.hash.update(batch)
                yield encode_batch(batch)
        yield b"E" + _U64.pack(self.hash.count) + bytes.fromhex(self.hash.hexdigest())

    def compressed(self, batches: Iterable[Batch], level: int = ZSTD_LEVEL) -> Iterator[bytes]:
        """The zstd-compressed file in chunks of about 1 MiB (what goes into the backup set)."""
        yield from compress(self.encode(batches), level)

    @property
    def count(self) -> int:
        return self.hash.count

    @property
    def content_hash(self) -> str:
        return self.hash.hexdigest()


def compress(pieces: Iterable[bytes], level: int = ZSTD_LEVEL) -> Iterator[bytes]:
    chunker = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=-1).chunker(chunk_size=CHUNK)
    for piece in pieces:
        yield from chunker.compress(piece)
    yield from chunker.finish()


# --- reading ---------------------------------------------------------------------------------------


class PointFileReader:
    """Decodes a (zstd-compressed) point file batch by batch, checking it against its trailer.

    After :meth:`batches` is exhausted, ``count`` and ``content_hash`` hold the values
    recomputed from the points read (equal to the trailer's, or :class:`CorruptArchive` was raised).
    """

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self.name = name
        self._stream = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
        head = self._read(len(MAGIC) + 4)
        if head[: len(MAGIC)] != MAGIC:
            raise CorruptArchive(name=name, detail="not a bdr point file (bad magic)")
        (length,) = _U32.unpack(head[len(MAGIC):])
        try:
            header = json.loads(self._read(length))
        except ValueError as exc:
            raise CorruptArchive(name=name, detail=f"unreadable header: {exc}") from exc
        if header.get("format") != FORMAT:
            raise CorruptArchive(name=name, detail=f"unsupported point file format {header.get('format')!r}")
        self.collection = str(header["collection"])
        self.layout = Layout.from_dict(header)
        self.hash = ContentHash(self.layout)
        self.verified = False
        self.trailer_count = -1
        self.trailer_hash = ""

    def _read(self, size: int) -> bytes:
        try:
            data = self._stream.read(size)
            while len(data) < size:
                more = self._stream.read(size - len(data))
                if not more:
                    break
                data += more
        except zstandard.ZstdError as exc:
            raise CorruptArchive(name=self.name, detail=f"zstd: {exc}") from exc
        if len(data) < size:
            raise CorruptArchive(name=self.name, detail="truncated: the file ends before its trailer")
        return data

    def batches(self, verify: bool = True) -> Iterator[Batch]:
        """Every batch, in file order; the trailer is checked after the last one.

        With ``verify`` false the points are not hashed (faster); :attr:`content_hash` is
        then the trailer's, taken on trust.
        """
        self.verified = verify
        while True:
            tag = self._read(1)
            if tag == b"E":
                self.trailer_count = _U64.unpack(self._read(8))[0]
                self.trailer_hash = self._read(32).hex()
                if self.trailer_count != self.hash.count or (verify and self.trailer_hash != self.hash.hexdigest()):
                    raise CorruptArchive(
                        name=self.name,
                        detail=f"content does not match its trailer ({self.hash.count} points read, "
                        f"{self.trailer_count} written)",
                    )
                return
            if tag != b"B":
                raise CorruptArchive(name=self.name, detail=f"unexpected record tag {tag!r}")
            (length,) = _U64.unpack(self._read(8))
            batch = self._decode(memoryview(self._read(length)))
            if verify:
                self.hash.update(batch)
            else:
                self.hash.count += len(batch)
            yield batch

    @property
    def count(self) -> int:
        return self.hash.count

    @property
    def content_hash(self) -> str:
        return self.hash.hexdigest() if self.verified else self.trailer_hash

    def _decode(self, body: memoryview) -> Batch:
        try:
            return self._decode_body(body)
        except (ValueError, IndexError, struct.error) as exc:
            raise CorruptArchive(name=self.name, detail=f"malformed batch: {exc}") from exc

    def _decode_body(self, body: memoryview) -> Batch:
        pos = 0

        def take(size: int) -> memoryview:
            nonlocal pos
            if pos + size > len(body):
                raise ValueError("batch shorter than its columns")
            view = body[pos:pos + size]
            pos += size
            return view

        (n,) = _U32.unpack(take(4))
        kinds = bytes(take(n))
        raw_ids = take(16 * n)
        ids: list[PointId] = []
        for i in range(n):
            chunk = raw_ids[16 * i:16 * i + 16]
            ids.append(_U64.unpack(chunk[:8])[0] if kinds[i] == 0 else str(uuid.UUID(bytes=bytes(chunk))))
        lengths = np.frombuffer(take(4 * n), dtype="<u4")
        blob = bytes(take(int(lengths.sum(dtype=np.int64))))
        payloads: list[bytes] = []
        offset = 0
        for length in lengths.tolist():
            payloads.append(blob[offset:offset + length])
            offset += length
        columns = []
        for spec in self.layout.vectors:
            present = np.frombuffer(take(n), dtype=np.uint8).astype(bool)
            k = int(present.sum())
            if spec.kind is VectorKind.DENSE:
                data = np.frombuffer(take(4 * k * spec.size), dtype="<f4").reshape(k, spec.size)
                columns.append(Column(spec, present, data.astype(np.float32)))
                continue
            counts = np.frombuffer(take(4 * k), dtype="<u4").astype(np.uint32)
            total = int(counts.sum(dtype=np.int64))
            if spec.kind is VectorKind.MULTI:
                data = np.frombuffer(take(4 * total * spec.size), dtype="<f4").reshape(total, spec.size)
                columns.append(Column(spec, present, data.astype(np.float32), counts))
                continue
            indices = np.frombuffer(take(4 * total), dtype="<u4").astype(np.uint32)
            values = np.frombuffer(take(4 * total), dtype="<f4").astype(np.float32)
            columns.append(Column(spec, present, values, counts, indices))
        if pos != len(body):
            raise ValueError(f"{len(body) - pos} stray bytes after the columns")
        return Batch(ids, payloads, columns)
