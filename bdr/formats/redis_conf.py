"""redis.conf, read the way redis-server reads it: the one parser bdr has for it.

One directive per line (lines split on ``\\n`` and trimmed of `` \\t\\r\\n``, as Redis does):
a name and its arguments, split like Redis's ``sdssplitargs`` (``"double quotes"`` with
``\\n``, ``\\xHH`` escapes, ``'single quotes'``); lines starting with ``#`` are comments.
Names are case-insensitive. ``include`` pulls in other files (glob patterns allowed, as in
Redis 7) at the place it appears; a later directive overrides an earlier one, except
``save``, whose lines add up.

Where an ``include`` points depends on who reads: redis-server resolves it against its
working directory *at that line* (``dir`` changes it), :mod:`bdr.runtime.settings` follows
that with its own locator; ``bdr lint`` reads a checkout, where the file sits next to the
one including it (:func:`in_checkout`). :func:`read_directives` takes the locator and is
lazy, so a reader can apply ``dir`` before the next include is located.

Options given to ``redis-server`` on its command line (``--appendonly no``, ``--save ""``)
are read by Redis as extra config lines after the file: :func:`parse_redis_args` turns them
into the same :class:`Directive` records, so a docker-compose ``command:`` can be checked
like a file. Memory sizes use Redis's units (``1k`` = 1000, ``1kb`` = 1024, ``1gb`` ...).
"""

from __future__ import annotations

import glob
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_INCLUDE_DEPTH = 16


class ArgsError(ValueError):
    """A config line Redis itself would refuse (unbalanced quotes)."""


@dataclass(frozen=True, slots=True)
class Directive:
    """One config directive: lower-case ``name``, its ``args``, and where it was written."""

    name: str
    args: tuple[str, ...]
    path: Path
    line: int

    @property
    def value(self) -> str:
        """The arguments as Redis prints them back (``save 900 1``)."""
        return " ".join(_quote(a) for a in self.args)

    def __str__(self) -> str:
        return f"{self.name} {self.value}".rstrip()


@dataclass(frozen=True, slots=True)
class ConfProblem:
    """A line redis-server would refuse or a file it could not read."""

    path: Path
    line: int | None
    detail: str
    fatal: bool = True
    """True when Redis refuses to start on it (a bad line); False for what lint cannot see (an include
    that points at a path of the container)."""
    cause: str = ""
    """The bare reason (``No such file or directory``, ``unbalanced quotes``), for a reader's own wording."""
    included_at: Directive | None = None
    """For a file that cannot be read: the ``include`` that named it (None for the main file)."""

    @property
    def unreadable(self) -> bool:
        """A file that could not be read (rather than a line in it)."""
        return self.line is None


@dataclass(frozen=True, slots=True)
class RedisConf:
    """A parsed redis.conf (with its includes resolved) or command line: directives in order."""

    path: Path
    directives: tuple[Directive, ...]
    problems: tuple[ConfProblem, ...] = ()

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.directives if d.name == name]

    def last(self, name: str) -> Directive | None:
        found = self.all(name)
        return found[-1] if found else None

    def extended(self, extra: Iterable[Directive]) -> RedisConf:
        """This config with ``extra`` directives after it (command-line options)."""
        return RedisConf(self.path, (*self.directives, *extra), self.problems)


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}
_HEX = re.compile(r"[0-9a-fA-F]{2}")


def split_args(line: str) -> list[str]:
    """Split one config line into arguments exactly like Redis's ``sdssplitargs``.

    Raises :class:`ArgsError` for unbalanced quotes or a closing quote not followed by a space.
    """
    args: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return args
        current: list[str] = []
        in_double = in_single = False
        while True:
            if in_double:
                if i >= n:
                    raise ArgsError("unbalanced quotes")
                char = line[i]
                if char == "\\" and i + 3 < n and line[i + 1] == "x" and _HEX.fullmatch(line[i + 2 : i + 4]):
                    current.append(chr(int(line[i + 2 : i + 4], 16)))
                    i += 3
                elif char == "\\" and i + 1 < n:
                    nxt = line[i + 1]
                    current.append(_ESCAPES.get(nxt, nxt))
                    i += 1
                elif char == '"':
                    if i + 1 < n and not line[i + 1].isspace():
                        raise ArgsError("closing quote must be followed by a space")
                    i += 1
                    break
                else:
                    current.append(char)
            elif in_single:
                if i >= n:
                    raise ArgsError("unbalanced quotes")
                char = line[i]
                if char == "\\" and i + 1 < n and line[i + 1] == "'":
                    current.append("'")
                    i += 1
                elif char == "'":
                    if i + 1 < n and not line[i + 1].isspace():
                        raise ArgsError("closing quote must be followed by a space")
                    i += 1
                    break
                else:
                    current.append(char)
            else:
                if i >= n:
                    break
                char = line[i]
                if char.isspace():
                    break
                if char == '"':
                    in_double = True
                elif char == "'":
                    in_single = True
                else:
                    current.append(char)
            i += 1
        args.append("".join(current))


def _quote(arg: str) -> str:
    if arg == "":
        return '""'
    if any(c.isspace() or c in "\"'" for c in arg):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


_MEMORY = re.compile(r"^(-?\d+)(k|kb|m|mb|g|gb)?$", re.IGNORECASE)
_MEMORY_UNITS = {None: 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}


def parse_memory(text: str) -> int:
    """Bytes in a Redis memory value: ``1gb`` = 1073741824, ``1g`` = 1000000000, ``100`` = 100."""
    match = _MEMORY.match(text.strip())
    if not match:
        raise ValueError(f"not a memory size: {text!r} (use e.g. 100mb, 1gb)")
    number, unit = match.groups()
    return int(number) * _MEMORY_UNITS[unit.lower() if unit else None]


Locate = Callable[[Directive], "Sequence[Path] | ConfProblem"]
"""Where an ``include`` directive points: the files to read, in order, or why there are none."""


def read_directives(path: Path, locate: Locate, text: str | None = None) -> Iterator[Directive | ConfProblem]:
    """Every directive of ``path`` (or of ``text`` read as that file) in order, includes expanded in place.

    Lazy: ``locate`` is called when an ``include`` is reached, after every directive before it
    was taken. Lines Redis would refuse and files that cannot be read come as :class:`ConfProblem`.
    """
    if text is None:
        yield from _file(path, locate, None, (), 0)
    else:
        yield from _lines(text, path, locate, (path.resolve(),), 0)


def expand_include(include: Directive, locate: Locate) -> Iterator[Directive | ConfProblem]:
    """The directives an ``include`` met outside a file (a ``--include`` option) brings in."""
    yield from _include(include, locate, (), 0)


def in_checkout(include: Directive) -> Sequence[Path] | ConfProblem:
    """How lint locates an include: as written (relative to the working directory, as redis-server resolves
    it), else relative to the including file, which is how a checkout keeps them; a soft problem when
    neither exists (a path inside the container or server)."""
    pattern = include.args[0]
    for base in (Path.cwd(), include.path.parent):
        full = Path(pattern) if Path(pattern).is_absolute() else base / pattern
        if any(c in pattern for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(full)))
            if matches:
                return [p for p in matches if p.is_file()]
        elif full.is_file():
            return [full]
    return ConfProblem(include.path, include.line,
                       f"included file {pattern} is not in this checkout (a path inside the container or server?); "
                       "the settings in it are not checked", fatal=False)


def parse_redis_conf(path: Path, locate: Locate = in_checkout) -> RedisConf:
    """Parse ``path`` and the files it includes; unreadable or refused lines become problems."""
    return _collect(path, read_directives(path, locate))


def parse_redis_text(text: str, path: Path, locate: Locate = in_checkout) -> RedisConf:
    """Parse config text as if it were the file ``path`` (includes resolved next to ``path``)."""
    return _collect(path, read_directives(path, locate, text))


def _collect(path: Path, found: Iterable[Directive | ConfProblem]) -> RedisConf:
    directives: list[Directive] = []
    problems: list[ConfProblem] = []
    for item in found:
        if isinstance(item, Directive):
            directives.append(item)
        else:
            problems.append(item)
    return RedisConf(path, tuple(directives), tuple(problems))


def _file(path: Path, locate: Locate, include: Directive | None, seen: tuple[Path, ...], depth: int
          ) -> Iterator[Directive | ConfProblem]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        yield ConfProblem(path, None, f"cannot read {path}: {reason}", cause=reason, included_at=include)
        return
    yield from _lines(text, path, locate, (*seen, path.resolve()), depth)


def _lines(text: str, path: Path, locate: Locate, seen: tuple[Path, ...], depth: int
           ) -> Iterator[Directive | ConfProblem]:
    for number, raw in enumerate(text.split("\n"), start=1):
        stripped = raw.strip(" \t\r\n")
        if not stripped or stripped.startswith("#"):
            continue
        try:
            args = split_args(stripped)
        except ArgsError as exc:
            yield ConfProblem(path, number, f"{exc} in {stripped.split()[0]!r} line", cause=str(exc))
            continue
        if not args:
            continue
        directive = Directive(args[0].lower(), tuple(args[1:]), path, number)
        if directive.name == "include":
            yield from _include(directive, locate, seen, depth)
        else:
            yield directive


def _include(directive: Directive, locate: Locate, seen: tuple[Path, ...], depth: int
             ) -> Iterator[Directive | ConfProblem]:
    if len(directive.args) != 1:
        yield ConfProblem(directive.path, directive.line, "include takes exactly one file")
        return
    if depth >= MAX_INCLUDE_DEPTH:
        yield ConfProblem(directive.path, directive.line, "includes nested too deeply (a loop?)")
        return
    located = locate(directive)
    if isinstance(located, ConfProblem):
        yield located
        return
    for candidate in located:
        if candidate.resolve() in seen:
            yield ConfProblem(directive.path, directive.line, f"{directive.args[0]} includes itself")
            continue
        logger.debug("%s:%d includes %s", directive.path, directive.line, candidate)
        yield from _file(candidate, locate, directive, seen, depth + 1)


def parse_redis_args(argv: Sequence[str], path: Path, line: int) -> tuple[str | None, list[Directive]]:
    """The config file and the ``--option value...`` directives of a ``redis-server`` command line.

    Returns the config file argument (or None) and the options as directives located at
    ``path:line`` (a compose file's ``command:``). As redis-server does, an option's arguments
    run until the next ``--name``.
    """
    conf: str | None = None
    directives: list[Directive] = []
    current: list[str] | None = None
    for index, arg in enumerate(argv):
        if arg.startswith("--") and len(arg) > 2:
            if current:
                directives.append(Directive(current[0].lower(), tuple(current[1:]), path, line))
            current = [arg[2:]]
        elif current is not None:
            current.append(arg)
        elif index == 0 and not arg.startswith("-"):
            conf = arg
    if current:
        directives.append(Directive(current[0].lower(), tuple(current[1:]), path, line))
    return conf, directives
