"""Copies: one backup set, taken once, held in a second repository (off-site on S3, or another disk).

A copy is the *same backup*: the same set id, the same snapshot (times, facts, content
digest) and the same files (``files[]`` and their sha256s), so ``bdr list`` shows it in
both repositories and ``bdr status`` counts it as one more copy of that backup (the 3-2-1
rule's off-site one, when it is on S3). No second snapshot is taken: every stored object
streams from the source repository to the destination, read through the checked streams
(:meth:`~bdr.repository.Repository.open_stored`), so a tampered or truncated object fails
the copy at its end, before a manifest exists there.

How a set travels (:class:`~bdr.copy.plan.Mode`):

``as is``
    An encrypted set (and a plain one where plaintext is allowed) is copied byte for byte,
    its manifest too: nothing is decrypted, no key is needed, and the manifest's digest and
    MAC still prove it is the set bdr wrote. (Its ``objects[].parts`` keep the source's
    record; S3 checks each part's sha256 on upload, and the copy's check re-hashes each
    whole object.)
``re-encrypted``
    A plain set going off-site (encrypted by default, like ``bdr backup --remote``;
    ``--allow-plaintext`` opts out) or with ``--encrypt``: each object is encrypted on its
    way (objects encrypted on their own, a configuration set's secrets, go as they are,
    so they must be under the same key), and the manifest is rewritten: same id and
    ``files[]``, new ``objects[]`` sizes and sha256s, ``encrypted`` with the key's id,
    sealed again with a new digest and a MAC under the key.

Writing is a backup's: the destination's lock (whose sweep removes what a killed copy left:
its writing marker proves the writer dead, pending multipart uploads included), the
writing marker, the objects, the manifest last. Then the copy is **checked**: loaded again
(digest, MAC with the key at hand), every stored object re-hashed against the new manifest;
a copy that fails is deleted. A note (:data:`~bdr.repository.COPY_NAME`,
:class:`~bdr.copy.record.CopyRecord`) beside its manifest says where it came from, how,
and when it was checked. A whole-system set is copied with its member sets, members first.
"""

from __future__ import annotations

from bdr.copy.plan import Mode, existing_copy, members_first, mode_for, refuse
from bdr.copy.record import CopyRecord
from bdr.copy.transfer import check_copy, write_copy

__all__ = ["CopyRecord", "Mode", "check_copy", "existing_copy", "members_first", "mode_for", "refuse",
           "write_copy"]
