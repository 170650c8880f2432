"""The copy note: beside a copied set's manifest, where it came from, how it travelled, when it was checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CopyRecord:
    """``<source>/<set-id>/copy.json`` in the destination repository."""

    copied_from: str
    """The source repository's url (a directory or ``s3://bucket/prefix``)."""
    from_location: str
    """``local`` or ``s3``."""
    mode: str
    """How it travelled (:class:`~bdr.copy.plan.Mode`): ``as is`` or ``re-encrypted``; ``already there`` for a
    set found in place and checked."""
    checked_at: str
    """When every stored object was last re-hashed against the manifest, and matched."""
    objects: int
    stored_bytes: int
    copied_at: str | None = None
    """When the copy was written (None: the set was found in place)."""
    seconds: float | None = None
    """How long writing it took."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CopyRecord | None:
        """The note as read, or None when it is not one (an older or edited file)."""
        try:
            seconds = data.get("seconds")
            return cls(str(data["copied_from"]), str(data["from_location"]), str(data["mode"]),
                       str(data["checked_at"]), int(data["objects"]), int(data["stored_bytes"]),
                       None if data.get("copied_at") is None else str(data["copied_at"]),
                       None if seconds is None else float(seconds))
        except (KeyError, TypeError, ValueError):
            return None
