"""Where an instance's archive goes, as ``archive.redis.NAME.to`` says: the repository and/or ``remote.url``.

The same keys as backups: the repository's segments and bases are encrypted with the key of
``encryption:`` when ``encrypt: true``; those sent to S3 always are, unless
``remote.allow_plaintext`` (as an off-site backup is refused without a key).
"""

from __future__ import annotations

from bdr.config import ArchiveSettings, Config
from bdr.engines.redis.archive.workers import Destination
from bdr.errors import UsageError
from bdr.repository import ObjectCipher, Repository


def _cipher(config: Config, needed: bool, offsite: bool) -> ObjectCipher | None:
    if not needed:
        return None
    from bdr.crypto import load_cipher

    try:
        cipher: ObjectCipher | None = load_cipher(config.encryption, required=True)
    except Exception as exc:
        if offsite:
            raise UsageError(detail=f"the archive goes off-site (archive.redis.*.to: s3) and no key is configured "
                             f"({exc}); run `bdr key generate` and set encryption.key_file, or set "
                             "remote.allow_plaintext: true") from exc
        raise
    return cipher


def destinations_for(config: Config, settings: ArchiveSettings) -> list[Destination]:
    out = []
    for label in settings.to:
        if label == "local":
            repo = Repository.open(config.repository_path())
            cipher = _cipher(config, settings.encrypt, offsite=False)
        else:
            assert config.remote.url is not None
            repo = Repository.open(config.remote.url, settings=config.remote)
            cipher = _cipher(config, settings.encrypt or not config.remote.allow_plaintext, offsite=True)
        out.append(Destination(label, repo, cipher))
    return out
