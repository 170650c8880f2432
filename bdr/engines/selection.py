"""What part of a set a restore puts back: one typed selection per engine, and what to do on a conflict.

A restore request carries a :class:`Selection`; each engine reads only its own kind:

=================  ==========================================  =======================================
selection          fields (the ``bdr restore`` flags)          empty means
=================  ==========================================  =======================================
RedisSelection     keys (--keys), db (--db), node (--node)     the whole data set
QdrantSelection    collection, rename_as (--as), filter        every collection of the set
FilesSelection     root (--to), paths (--path)                 every file, under the configured root
GrafanaSelection   dashboard (--dashboard)                     the whole database
Selection          none (Prometheus, a whole-system set)       everything
=================  ==========================================  =======================================

A point-in-time restore's selection adds the moment and the plan to the Redis one
(:class:`~bdr.engines.redis.archive.restore.PointInTimeSelection`). An engine finds its kind as
``engine.selection_type``; :meth:`Selection.of` builds one from the keyword arguments of
:func:`bdr.api.restore` (an option another kind owns, ``--keys`` on a Qdrant restore, is a
:class:`~bdr.errors.WrongSelection`, exit 2), :meth:`Selection.expect` is how an engine takes the
request's (the plain :class:`Selection` is "everything" for every engine; another engine's kind is
refused). The restore journal keeps :meth:`~Selection.to_state` (the flags' names: ``keys``, ``as``,
``paths`` ...) and ``--resume``/``--abort`` rebuild it with :meth:`~Selection.from_state`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Self

from bdr.errors import UsageError, WrongSelection


class Conflict(StrEnum):
    """What a selective restore does with an item (key, point) that exists in the target too."""

    FAIL = "fail"
    """Write nothing; the error lists them (the default)."""
    SKIP = "skip"
    """Keep the live item."""
    REPLACE = "replace"
    """Overwrite it with the backup's."""

    @classmethod
    def of(cls, value: str | Conflict) -> Conflict:
        try:
            return cls(value)
        except ValueError:
            raise UsageError(detail=f"--conflict must be one of {', '.join(cls)}, got {value!r}") from None


def option(flag: str | None, *, state: str | None = None, parse: Callable[[Any], Any] | None = None,
           dump: Callable[[Any], Any] | None = None, default: Any = None) -> Any:
    """A field of a selection: its ``bdr restore`` flag (None: set by bdr, not an option), its key in the
    journal state (default: the field name), how to read it back from the state and write it there."""
    return field(default=default, metadata={"flag": flag, "state": state, "parse": parse, "dump": dump})


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == ()


@dataclass(frozen=True, slots=True)
class Selection:
    """Everything: what an engine without a selection takes, and the default of every request."""

    @property
    def empty(self) -> bool:
        """True when nothing is selected: the restore puts back everything."""
        return all(_blank(getattr(self, f.name)) for f in fields(self))

    def to_state(self) -> dict[str, Any]:
        """The journal's form: the fields that are set, by their state key."""
        state: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if not _blank(value):
                dump = f.metadata.get("dump")
                state[f.metadata.get("state") or f.name] = dump(value) if dump else value
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Back from :meth:`to_state` (keys it does not know are ignored: a journal of another kind of restore)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = state.get(f.metadata.get("state") or f.name)
            if not _blank(raw):
                parse = f.metadata.get("parse")
                values[f.name] = parse(raw) if parse else raw
        return cls(**values)

    @classmethod
    def flags(cls) -> list[str]:
        return [f.metadata["flag"] for f in fields(cls) if f.metadata.get("flag")]

    @classmethod
    def takes(cls) -> str:
        flags = cls.flags()
        return ", ".join(flags) if flags else "nothing (it restores everything)"

    def given(self) -> str:
        """The flags of the fields that are set (``--keys``), or the kind's name."""
        flags = [f.metadata.get("flag") or f.name for f in fields(self) if not _blank(getattr(self, f.name))]
        return ", ".join(flags) or type(self).__name__

    @classmethod
    def of(cls, source: str, **options: Any) -> Self:
        """The selection of a ``source`` restore from :func:`bdr.api.restore`'s keyword arguments (None: not given);
        an option this kind does not have is a :class:`~bdr.errors.WrongSelection`."""
        by_name = {f.name: f for f in fields(cls) if f.metadata.get("flag")}
        given = {name: value for name, value in options.items() if not _blank(value)}
        unknown = [name for name in given if name not in by_name]
        if unknown:
            raise WrongSelection(source=source, takes=cls.takes(),
                                 given=", ".join(_flag_of(name) for name in unknown))
        parsed = {name: by_name[name].metadata["parse"](value) if by_name[name].metadata.get("parse") else value
                  for name, value in given.items()}
        chosen = cls(**parsed)
        chosen.check()
        return chosen

    def check(self) -> None:
        """Refuse a combination that means nothing (a :class:`~bdr.errors.UsageError`)."""

    @classmethod
    def expect(cls, selection: Selection, source: str) -> Self:
        """``selection`` as this kind (checked): itself, an empty one for the plain "everything", else refused."""
        if type(selection) is Selection:
            return cls()
        if cls is not Selection and isinstance(selection, cls):
            selection.check()
            return selection
        raise WrongSelection(source=source, takes=cls.takes(), given=selection.given())


EVERYTHING = Selection()


def _kinds(kind: type[Selection]) -> list[type[Selection]]:
    return [kind] + [k for sub in kind.__subclasses__() for k in _kinds(sub)]


def _flag_of(name: str) -> str:
    """The flag of an option by its keyword name (``rename_as``: ``--as``), whichever kind has it."""
    for kind in _kinds(Selection):
        for f in fields(kind):
            if f.name == name and f.metadata.get("flag"):
                return str(f.metadata["flag"])
    return f"--{name.replace('_', '-')}"


def _database(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(detail=f"--db must be a database number (0, 1, ...), got {value!r}")
    return value


def _text(flag: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise UsageError(detail=f"{flag} takes a text, got {value!r}")
        return value
    return parse


def _texts(value: Any) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(item, str) for item in items):
        raise UsageError(detail=f"--path takes glob patterns (texts), got {value!r}")
    return items


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise UsageError(detail='--filter must be a JSON object such as {"must": [{"key": "tenant", '
                         '"match": {"value": "acme"}}]}')
    return dict(value)


@dataclass(frozen=True, slots=True)
class RedisSelection(Selection):
    """``--keys PATTERN`` (and ``--db N``): a key-level copy; ``--node HOST:PORT``: a lost cluster node back."""

    keys: str | None = option("--keys", parse=_text("--keys"))
    db: int | None = option("--db", parse=_database)
    node: str | None = option("--node", parse=_text("--node"))

    def check(self) -> None:
        if self.db is not None and not self.keys:
            raise UsageError(detail="--db only applies with --keys")
        if self.node and self.keys:
            raise UsageError(detail="--node brings a lost node back whole: it takes no --keys")


@dataclass(frozen=True, slots=True)
class QdrantSelection(Selection):
    """One collection of the set (``--collection``), under another name (``--as``), only the points matching a
    payload filter (``--filter``, a Qdrant filter as JSON)."""

    collection: str | None = option("--collection", parse=_text("--collection"))
    rename_as: str | None = option("--as", state="as", parse=_text("--as"))
    filter: Mapping[str, Any] | None = option("--filter", parse=_json_object)

    def check(self) -> None:
        if self.rename_as and not self.collection:
            raise UsageError(detail="--as needs --collection")


@dataclass(frozen=True, slots=True)
class FilesSelection(Selection):
    """Only the files matching ``--path`` globs, written under ``--to DIR`` instead of the configured root."""

    root: str | None = option("--to", parse=str)
    paths: tuple[str, ...] = option("--path", parse=_texts, dump=list, default=())


@dataclass(frozen=True, slots=True)
class GrafanaSelection(Selection):
    """One dashboard (``--dashboard UID``), imported through Grafana's HTTP API."""

    dashboard: str | None = option("--dashboard", parse=_text("--dashboard"))
