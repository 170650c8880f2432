"""Encryption throughput: bdr's chunked AES-256-GCM stream against a bare AESGCM loop, same run.

The floor seals the same data in 1 MiB chunks with ``cryptography``'s AESGCM and nothing
else; bdr adds the framing, the nonce construction and the streaming sink/reader. Run:
``.venv/bin/python bench/crypto_throughput.py [--mib 256]``.
"""

from __future__ import annotations

import argparse
import io
import os
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bdr.crypto import CHUNK_SIZE, StreamCipher


class NullSink:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes) -> int:
        return self.buffer.write(data)

    def commit(self) -> object:
        return None

    def abort(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    data = os.urandom(CHUNK_SIZE) * args.mib
    key = os.urandom(32)

    started = time.perf_counter()
    aead = AESGCM(key)
    sealed_chunks = [aead.encrypt(i.to_bytes(12, "big"), data[o:o + CHUNK_SIZE], b"")
                     for i, o in enumerate(range(0, len(data), CHUNK_SIZE))]
    floor_enc = time.perf_counter() - started
    started = time.perf_counter()
    for i, chunk in enumerate(sealed_chunks):
        aead.decrypt(i.to_bytes(12, "big"), chunk, b"")
    floor_dec = time.perf_counter() - started

    cipher = StreamCipher(key=key)
    sink = NullSink()
    started = time.perf_counter()
    writer = cipher.encrypting(sink)  # type: ignore[arg-type]
    for o in range(0, len(data), CHUNK_SIZE):
        writer.write(data[o:o + CHUNK_SIZE])
    writer.commit()
    ours_enc = time.perf_counter() - started
    started = time.perf_counter()
    with cipher.decrypting(io.BytesIO(sink.buffer.getvalue()), "bench") as reader:
        while reader.read(CHUNK_SIZE):
            pass
    ours_dec = time.perf_counter() - started

    mib = args.mib
    print(f"{'operation':<28} {'MiB/s':>8} {'floor MiB/s':>12} {'x floor time':>13}")
    print(f"{'encrypt':<28} {mib / ours_enc:>8.0f} {mib / floor_enc:>12.0f} {ours_enc / floor_enc:>13.2f}")
    print(f"{'decrypt':<28} {mib / ours_dec:>8.0f} {mib / floor_dec:>12.0f} {ours_dec / floor_dec:>13.2f}")


if __name__ == "__main__":
    main()
