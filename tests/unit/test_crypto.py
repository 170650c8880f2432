"""AES-256-GCM chunked encryption: round trips, and every way a stored object can be attacked."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from bdr.config import EncryptionSettings
from bdr.crypto import (
    CHUNK_SIZE,
    HEADER,
    LENGTH,
    StreamCipher,
    decrypt_openssl_legacy,
    generate_key_file,
    load_cipher,
)
from bdr.errors import ConfigError, MissingKey, TamperedData, UsageError, WrongKey

KEY = bytes(range(32))


def chunks_of(sealed: bytes) -> tuple[bytes, list[bytes]]:
    header, rest, out = sealed[:HEADER.size], sealed[HEADER.size:], []
    while rest:
        (length,) = LENGTH.unpack(rest[:4])
        out.append(rest[:4 + length])
        rest = rest[4 + length:]
    return header, out


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17])
def test_round_trip_of_any_size(size: int) -> None:
    cipher = StreamCipher(key=KEY)
    data = os.urandom(size)
    sealed = cipher.seal(data)
    assert cipher.open(sealed) == data
    assert size < 64 or data[:64] not in sealed


def test_tampering_is_detected() -> None:
    cipher = StreamCipher(key=KEY)
    sealed = cipher.seal(os.urandom(3 * CHUNK_SIZE + 5))
    header, chunks = chunks_of(sealed)
    flipped = bytearray(sealed)
    flipped[len(sealed) // 2] ^= 1
    attacks = {
        "a flipped byte": bytes(flipped),
        "truncated at a chunk boundary": header + b"".join(chunks[:-1]),
        "truncated mid-chunk": sealed[:-100],
        "reordered chunks": header + chunks[1] + chunks[0] + b"".join(chunks[2:]),
        "a duplicated chunk": header + chunks[0] + b"".join(chunks),
        "bytes after the end": sealed + b"\0",
        "another object's header": cipher.seal(b"x")[:HEADER.size] + b"".join(chunks),
    }
    for what, attacked in attacks.items():
        with pytest.raises(TamperedData):
            cipher.open(attacked)
        assert what


def test_wrong_key_and_wrong_passphrase_are_named_as_such() -> None:
    sealed = StreamCipher(key=KEY).seal(b"secret")
    with pytest.raises(WrongKey, match="wrong key"):
        StreamCipher(key=bytes(32)).open(sealed)
    by_pass = StreamCipher(passphrase=b"correct horse").seal(b"secret")
    assert StreamCipher(passphrase=b"correct horse").open(by_pass) == b"secret"
    with pytest.raises(WrongKey):
        StreamCipher(passphrase=b"battery staple").open(by_pass)


def test_key_id_is_stable_and_not_the_key() -> None:
    cipher = StreamCipher(key=KEY)
    assert cipher.key_id == StreamCipher(key=KEY).key_id and len(cipher.key_id) == 16
    assert KEY.hex()[:16] != cipher.key_id and KEY.hex() not in repr(cipher)


def test_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "backup.key"
    key_id = generate_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(UsageError, match="exists"):
        generate_key_file(path)
    settings = EncryptionSettings(key_file=str(path), key_env=None, passphrase_env=None)
    cipher = load_cipher(settings)
    assert cipher is not None and cipher.key_id == key_id
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_cipher(settings)
    monkeypatch.setenv("BDR_TEST_KEY", KEY.hex())
    assert load_cipher(EncryptionSettings(key_env="BDR_TEST_KEY", passphrase_env=None)).key_id == \
        StreamCipher(key=KEY).key_id  # type: ignore[union-attr]
    nothing = EncryptionSettings(key_file=None, key_env="BDR_NO_SUCH_VAR", passphrase_env="BDR_NO_SUCH_VAR")
    assert load_cipher(nothing) is None
    with pytest.raises(MissingKey, match="bdr key generate"):
        load_cipher(nothing, required=True)


@pytest.mark.parametrize("flags", [["-md", "md5"], ["-md", "sha256"], ["-pbkdf2"]])
def test_reads_files_of_the_old_openssl_runbook(tmp_path: Path, flags: list[str]) -> None:
    env = tmp_path / ".env"
    env.write_text("OPENAI_API_KEY=sk-old\nREDIS_PASSWORD=hunter2\n")
    out = tmp_path / "env_encrypted.enc"
    proc = subprocess.run(["openssl", "enc", "-aes-256-cbc", "-salt", *flags, "-in", str(env), "-out", str(out),
                           "-pass", "env:OLD_PASS"], env={**os.environ, "OLD_PASS": "rotate-me"},
                          capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"openssl cannot make this variant: {proc.stderr.decode().strip()}")
    assert decrypt_openssl_legacy(out.read_bytes(), "rotate-me") == env.read_bytes()
    with pytest.raises(WrongKey):
        decrypt_openssl_legacy(out.read_bytes(), "wrong")


def test_non_openssl_input_is_refused() -> None:
    with pytest.raises(TamperedData):
        decrypt_openssl_legacy(b"plain text, not encrypted" + struct.pack(">I", 7), "pw")
