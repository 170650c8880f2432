"""The old runbook's ``openssl enc -aes-256-cbc -salt`` files, made by the real openssl binary."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bdr.crypto import decrypt_openssl_legacy, is_openssl_file
from bdr.errors import TamperedData, WrongKey, WrongPassphrase

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")

ENV = "OPENAI_API_KEY=sk-old-0123456789\nREDIS_PASSWORD=hunter2\nQDRANT_API_KEY=qk-42\n"


def openssl_enc(tmp_path: Path, plain: bytes, flags: list[str], passphrase: str = "rotate-me") -> bytes:
    """What the runbook ran: ``openssl enc -aes-256-cbc -salt -in .env -out env_encrypted.enc`` (+ flags)."""
    source, out = tmp_path / ".env", tmp_path / "env_encrypted.enc"
    source.write_bytes(plain)
    proc = subprocess.run(["openssl", "enc", "-aes-256-cbc", "-salt", *flags, "-in", str(source), "-out", str(out),
                           "-pass", "env:OLD_PASS"], env={**os.environ, "OLD_PASS": passphrase},
                          capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"this openssl cannot make {flags}: {proc.stderr.decode().strip()}")
    return out.read_bytes()


@pytest.mark.parametrize("flags", [
    [],                            # the runbook's command: this openssl's default (sha256 since 1.1.0)
    ["-md", "sha256"],
    ["-md", "md5"],                # what openssl < 1.1 did by default
    ["-pbkdf2"],
    ["-pbkdf2", "-md", "sha256"],
    ["-a"],                        # base64
    ["-md", "md5", "-a"],
], ids=lambda f: " ".join(f) or "default")
def test_reads_every_variant(tmp_path: Path, flags: list[str]) -> None:
    data = openssl_enc(tmp_path, ENV.encode(), flags)
    assert is_openssl_file(data[:16])
    assert decrypt_openssl_legacy(data, "rotate-me") == ENV.encode()
    with pytest.raises(WrongPassphrase, match=r"wrong passphrase.*\$BDR_OLD"):
        decrypt_openssl_legacy(data, "rotate-me!", where="$BDR_OLD")


@pytest.mark.parametrize("size", [0, 15, 16, 17, 100_000])
def test_binary_content_of_any_length(tmp_path: Path, size: int) -> None:
    # sha256, the derivation tried first: for binary content (no UTF-8 check) a derivation tried before the
    # right one could pass the padding check by chance (1 in 256), and this test must not flake
    plain = os.urandom(size)
    data = openssl_enc(tmp_path, plain, ["-md", "sha256"])
    assert decrypt_openssl_legacy(data, "rotate-me", text=False) == plain


def test_a_wrong_passphrase_is_a_wrong_key_error_for_every_attempt(tmp_path: Path) -> None:
    data = openssl_enc(tmp_path, (ENV * 50).encode(), [], passphrase="the right one")
    for guess in ("", "the right on", "The right one", "the right one "):
        with pytest.raises(WrongKey):
            decrypt_openssl_legacy(data, guess)


def test_what_is_not_an_openssl_file_is_refused() -> None:
    for data in (ENV.encode(), b"Salted__short", b"Salted__" + bytes(8) + bytes(15)):
        assert not is_openssl_file(data[:16]) or data.startswith(b"Salted__")
        with pytest.raises(TamperedData):
            decrypt_openssl_legacy(data, "pw")
