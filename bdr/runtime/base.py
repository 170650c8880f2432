"""The runtime interface: one service instance's life cycle and its data directory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class Runtime(Protocol):
    """A service instance that can be stopped, started and have its data replaced.

    ``data_path`` is a host directory holding the instance's data files, a live view: for
    the docker runtime, the volume's ``Mountpoint`` on the engine's host, readable only when
    bdr runs as root there (it raises a :class:`~bdr.errors.ServiceError` otherwise). A
    container runtime also has ``export_data(dest, names=())``, which copies the data
    directory (or some names in it) to a host directory through the engine, for any engine
    and user: call it *after* ``BGSAVE`` finished, never before. ``replace_data`` swaps
    the directory's contents for those of another directory while the service is stopped.
    """

    service: str

    @property
    def name(self) -> str:
        """The instance name in bdr.yaml (``production``, ``test`` ...)."""
        ...

    def url(self) -> str: ...

    def running(self) -> bool: ...

    def start(self, timeout: float = 60.0, overrides: Sequence[str] = ()) -> None:
        """Start the service; ``overrides`` are extra server arguments for this start only
        (e.g. ``--appendonly no`` to load an RDB into an AOF instance)."""
        ...

    def stop(self, timeout: float = 60.0) -> None:
        """Stop cleanly *without* saving (the data on disk is what we restore or keep)."""
        ...

    def kill(self) -> None:
        """SIGKILL: the crash the drills inject."""
        ...

    def data_path(self) -> Path: ...

    def replace_data(self, source: Path, clear: Iterable[str] = ()) -> None:
        """Make the data directory hold exactly the files under ``source`` (service stopped)."""
        ...

    def describe(self) -> dict[str, str]:
        """Facts for reports: runtime kind, version, image or binary, pid or container id."""
        ...
