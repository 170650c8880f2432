"""The encrypted object format: round trips of any size and split, and every way a stored object can be attacked."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bdr.crypto import CHUNK_SIZE, HEADER, LENGTH, Cipher
from bdr.crypto.stream import MemorySink, key_id_of
from bdr.errors import TamperedData, WrongKey
from bdr.repository import Repository, extract_set
from bdr.repository.archive import ArchiveMember

KEY = bytes(range(32))
CIPHER = Cipher.from_key(KEY)


def chunks_of(sealed: bytes) -> tuple[bytes, list[bytes]]:
    """The header and the framed chunks (length + ciphertext) of an encrypted object."""
    header, rest, out = sealed[:HEADER.size], sealed[HEADER.size:], []
    while rest:
        (length,) = LENGTH.unpack(rest[:4])
        out.append(rest[:4 + length])
        rest = rest[4 + length:]
    return header, out


@pytest.mark.parametrize(("size", "chunks"), [(0, 1), (1, 1), (CHUNK_SIZE - 1, 1), (CHUNK_SIZE, 1),
                                              (CHUNK_SIZE + 1, 2), (3 * CHUNK_SIZE + 17, 4)])
def test_round_trip_of_any_size(size: int, chunks: int) -> None:
    data = os.urandom(size)
    sealed = CIPHER.seal(data)
    assert CIPHER.open(sealed) == data
    assert len(chunks_of(sealed)[1]) == chunks
    assert size < 64 or data[:64] not in sealed


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 3 * CHUNK_SIZE // 2), max_size=6), read_size=st.integers(1, 3 * CHUNK_SIZE))
def test_any_split_of_writes_and_reads_gives_the_same_bytes(sizes: list[int], read_size: int) -> None:
    data = os.urandom(sum(sizes))
    out = MemorySink()
    sink = CIPHER.encrypting(out)
    offset = 0
    for size in sizes:
        sink.write(data[offset:offset + size])
        offset += size
    sink.commit()
    with CIPHER.decrypting(io.BytesIO(out.getvalue()), "split") as reader:
        got = b"".join(iter(lambda: reader.read(read_size), b""))
    assert got == data
    with CIPHER.decrypting(io.BytesIO(out.getvalue()), "split") as reader:
        buffer = bytearray(read_size)
        parts = []
        while n := reader.readinto(buffer):  # type: ignore[attr-defined]
            parts.append(bytes(buffer[:n]))
    assert b"".join(parts) == data


def test_the_same_plaintext_never_gives_the_same_ciphertext() -> None:
    first, second = CIPHER.seal(b"x" * 100), CIPHER.seal(b"x" * 100)
    assert first != second and first[:HEADER.size] != second[:HEADER.size]  # fresh object salt and nonce prefix


def test_every_attack_on_a_stored_object_is_detected() -> None:
    sealed = CIPHER.seal(os.urandom(3 * CHUNK_SIZE + 5))
    header, chunks = chunks_of(sealed)
    other_header, other_chunks = chunks_of(CIPHER.seal(os.urandom(3 * CHUNK_SIZE + 5)))

    def flipped(at: int) -> bytes:
        data = bytearray(sealed)
        data[at] ^= 0x01
        return bytes(data)

    attacks = {
        "a flipped byte in the object salt": flipped(HEADER.size - 7 - 16 + 3),
        "a flipped byte in the nonce prefix": flipped(HEADER.size - 2),
        "a flipped byte in a chunk length": flipped(HEADER.size + 3),
        "a flipped byte in the middle": flipped(len(sealed) // 2),
        "a flipped byte in the last tag": flipped(len(sealed) - 1),
        "truncated at a chunk boundary": header + b"".join(chunks[:-1]),
        "truncated mid-chunk": sealed[:-100],
        "truncated inside a length": sealed[:HEADER.size + 2],
        "only the header": header,
        "a header cut short": header[:20],
        "reordered chunks": header + chunks[1] + chunks[0] + b"".join(chunks[2:]),
        "a duplicated chunk": header + chunks[0] + b"".join(chunks),
        "a dropped middle chunk": header + chunks[0] + b"".join(chunks[2:]),
        "bytes after the final chunk": sealed + b"\0",
        "a chunk appended after the final one": sealed + other_chunks[0],
        "another object's header": other_header + b"".join(chunks),
        "a chunk from another object": header + other_chunks[0] + b"".join(chunks[1:]),
        "a non-final chunk presented as the end": header + chunks[0],
        "not an encrypted object": b"PK\x03\x04" + sealed[4:],
    }
    for what, attacked in attacks.items():
        with pytest.raises(TamperedData, match="failed authentication"):
            CIPHER.open(attacked, name=what)


def test_only_authenticated_plaintext_is_handed_out() -> None:
    data = os.urandom(2 * CHUNK_SIZE + 10)
    sealed = bytearray(CIPHER.seal(data))
    sealed[-20] ^= 0x01  # the last chunk
    with CIPHER.decrypting(io.BytesIO(bytes(sealed)), "obj") as reader:
        assert reader.read(CHUNK_SIZE) == data[:CHUNK_SIZE]  # this chunk authenticated
        assert reader.read(CHUNK_SIZE) == data[CHUNK_SIZE:2 * CHUNK_SIZE]
        with pytest.raises(TamperedData):
            reader.read(CHUNK_SIZE)
    small = bytearray(CIPHER.seal(b"API_KEY=secret"))
    small[-1] ^= 0x01
    with CIPHER.decrypting(io.BytesIO(bytes(small)), "obj") as reader, pytest.raises(TamperedData):
        reader.read(1)  # not one byte of an unauthenticated chunk


def test_a_wrong_key_is_named_before_anything_is_read() -> None:
    sealed = CIPHER.seal(b"secret")
    other = Cipher.from_key(bytes(32))
    stream = io.BytesIO(sealed)
    with pytest.raises(WrongKey, match=f"wrong key.*key id {CIPHER.key_id}, given {other.key_id}"):
        other.decrypting(stream, "obj")  # the header is checked when the reader is made
    assert stream.closed


def test_passphrases_are_salted_per_run_and_still_open_each_others_objects() -> None:
    first = Cipher.from_passphrase(b"correct horse battery staple")
    second = Cipher.from_passphrase(b"correct horse battery staple")
    assert first.key_id != second.key_id  # a salted scrypt: no id to precompute across installations
    sealed = first.seal(b"secret")
    assert second.open(sealed) == b"secret"
    with pytest.raises(WrongKey, match="a passphrase from"):
        Cipher.from_passphrase(b"battery staple correct horse").open(sealed)
    with pytest.raises(WrongKey, match="made with a passphrase"):
        CIPHER.open(sealed)
    with pytest.raises(WrongKey, match="made with a key file"):
        first.open(CIPHER.seal(b"secret"))


def test_key_id_is_stable_and_reveals_nothing_of_the_key() -> None:
    assert CIPHER.key_id == Cipher.from_key(KEY).key_id == key_id_of(KEY)
    assert len(CIPHER.key_id) == 16 and int(CIPHER.key_id, 16) >= 0
    assert CIPHER.key_id not in (KEY.hex(), hashlib.sha256(KEY).hexdigest()[:16], hashlib.md5(KEY).hexdigest()[:16])
    assert KEY.hex() not in repr(CIPHER) and KEY.hex()[:8] not in repr(CIPHER)
    sealed = CIPHER.seal(b"")
    assert KEY not in sealed and bytes.fromhex(CIPHER.key_id) in sealed[:HEADER.size]


def test_secret_digests_are_keyed() -> None:
    data = b"OPENAI_API_KEY=sk-live-1\n"
    digest = CIPHER.digest(data)
    assert digest.startswith(f"hmac-sha256:{CIPHER.key_id}:raw:")
    assert hashlib.sha256(data).hexdigest() not in digest
    assert CIPHER.digest_matches(data, digest) and not CIPHER.digest_matches(data + b"x", digest)
    assert not CIPHER.digest_matches(data, "sha256:abc")
    with pytest.raises(WrongKey):
        Cipher.from_key(bytes(32)).digest_matches(data, digest)
    by_passphrase = Cipher.from_passphrase(b"correct horse battery staple").digest(data)
    assert Cipher.from_passphrase(b"correct horse battery staple").digest_matches(data, by_passphrase)


def test_encrypted_set_in_a_repository_holds_no_plaintext(tmp_path: Path) -> None:
    source = tmp_path / "settings.yml"
    source.write_bytes(b"api_token: tok-3b1f0e9c\n" * 1000)
    repo = Repository.open(tmp_path / "repo")
    with repo.new_set("config", "config", "files", cipher=CIPHER) as writer:
        writer.add_archive([ArchiveMember(source, "settings.yml")], compress=False)
        manifest = writer.commit()
    stored = b"".join(p.read_bytes() for p in (tmp_path / "repo").rglob("*") if p.is_file())
    assert b"tok-3b1f0e9c" not in stored and manifest.encrypted and manifest.key_id == CIPHER.key_id
    extract_set(repo, repo.get(manifest.id), tmp_path / "out", CIPHER)
    assert (tmp_path / "out" / "settings.yml").read_bytes() == source.read_bytes()
    with pytest.raises(WrongKey):
        extract_set(repo, repo.get(manifest.id), tmp_path / "wrong", Cipher.from_key(bytes(32)))
    assert not (tmp_path / "wrong" / "settings.yml").exists()


@pytest.mark.parametrize("size", ["4k", "1m"], ids=["in the first chunk", "mid-stream"])
def test_a_failed_write_breaks_the_encrypted_sink_and_abort_still_works(tmp_path: Path, size: str) -> None:
    """A full disk under the cipher: the same error every time after, never a chunk sealed twice, abort always."""
    from bdr.errors import NoSpace
    from bdr.storage.local import LocalStorage
    from tests.mounts import tmpfs

    with tmpfs(tmp_path / "disk", size) as disk:
        sink = CIPHER.encrypting(LocalStorage(disk).open_write("set/obj"))
        block = os.urandom(CHUNK_SIZE // 3 + 5)  # writes that straddle chunk boundaries
        with pytest.raises(NoSpace):
            for _ in range(20):
                sink.write(block)
        for again in (lambda: sink.write(block), sink.commit):
            with pytest.raises(NoSpace):
                again()
        sink.abort()
        sink.abort()
        assert [p for p in disk.rglob("*") if p.is_file()] == []


def test_using_an_encrypted_sink_after_commit_is_a_typed_error() -> None:
    from bdr.errors import StorageError

    sink = CIPHER.encrypting(MemorySink())
    sink.write(b"data")
    sink.commit()
    with pytest.raises(StorageError, match="after it was committed or aborted"):
        sink.write(b"more")
    with pytest.raises(StorageError):
        sink.commit()
    sink.abort()
