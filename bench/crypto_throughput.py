"""Encryption throughput: bdr's chunked AES-256-GCM stream against a bare AESGCM loop, same run.

The floor seals the same data in 1 MiB chunks with ``cryptography``'s AESGCM and nothing else
(one key, a counter nonce, no framing). Both drop the output as they go (a sink that counts),
so the figures are of the crypto path, not of the memory allocator. bdr adds the per-object key (HKDF), the header, the
chunk framing and nonce construction, and the streaming sink and reader the repository uses;
its data arrives in 256 KiB writes, as an archive writer sends it, and is read back in
128 KiB reads, as the zstd reader asks for it. Best of ``--runs``. Run:
``.venv/bin/python bench/crypto_throughput.py [--mib 256] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import io
import os
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bdr.crypto import CHUNK_SIZE, Cipher
from bdr.storage.base import WrittenObject

WRITE_SIZE = 256 * 1024
READ_SIZE = 128 * 1024


class CountingSink:
    """Counts what it is given and drops it, as the floor drops its ciphertext."""

    def __init__(self, keep: bool = False) -> None:
        self.size = 0
        self.parts: list[bytes] | None = [] if keep else None

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.parts is not None:
            self.parts.append(bytes(data))
        return len(data)

    def commit(self) -> WrittenObject:
        return WrittenObject("bench", self.size, "")

    def abort(self) -> None:
        self.size = 0


def best(runs: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    data = os.urandom(CHUNK_SIZE) * args.mib
    key = os.urandom(32)
    aead = AESGCM(key)
    view = memoryview(data)
    offsets = range(0, len(data), CHUNK_SIZE)
    sealed_chunks = [aead.encrypt(i.to_bytes(12, "big"), view[o:o + CHUNK_SIZE], b"") for i, o in enumerate(offsets)]

    def floor_encrypt() -> None:
        for i, o in enumerate(offsets):
            aead.encrypt(i.to_bytes(12, "big"), view[o:o + CHUNK_SIZE], b"")

    def floor_decrypt() -> None:
        for i, chunk in enumerate(sealed_chunks):
            aead.decrypt(i.to_bytes(12, "big"), chunk, b"")

    cipher = Cipher.from_key(key)
    kept = CountingSink(keep=True)
    writer = cipher.encrypting(kept)
    writer.write(data)
    writer.commit()
    stored = b"".join(kept.parts or [])

    def ours_encrypt() -> None:
        writer = cipher.encrypting(CountingSink())
        for o in range(0, len(data), WRITE_SIZE):
            writer.write(view[o:o + WRITE_SIZE])  # type: ignore[arg-type]
        writer.commit()

    def ours_decrypt() -> None:
        with cipher.decrypting(io.BytesIO(stored), "bench") as reader:
            while reader.read(READ_SIZE):
                pass

    floor_enc = best(args.runs, floor_encrypt)
    floor_dec = best(args.runs, floor_decrypt)
    ours_enc = best(args.runs, ours_encrypt)
    ours_dec = best(args.runs, ours_decrypt)
    mib = args.mib
    print(f"{mib} MiB, best of {args.runs}")
    print(f"{'operation':<22} {'bdr MiB/s':>10} {'floor MiB/s':>12} {'x floor time':>13}")
    for name, ours, floor in (("encrypt", ours_enc, floor_enc), ("decrypt", ours_dec, floor_dec),
                              ("encrypt + decrypt", ours_enc + ours_dec, floor_enc + floor_dec)):
        print(f"{name:<22} {mib / ours:>10.0f} {mib / floor:>12.0f} {ours / floor:>13.2f}")


if __name__ == "__main__":
    main()
