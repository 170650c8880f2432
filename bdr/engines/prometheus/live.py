"""What the Prometheus engine, its restore and its trial all ask of a live server: its runtime, series, room.

A module below :mod:`.engine`, :mod:`.restore` and :mod:`.trial`, so none of them reaches back
into another for these (the engine hands itself to its restorers instead).
"""

from __future__ import annotations

import os
from pathlib import Path

from bdr.config import PrometheusInstance
from bdr.engines.prometheus.client import PrometheusClient
from bdr.errors import StorageError
from bdr.runtime.prometheus import PrometheusRuntime

ALL_SERIES = '{__name__=~".+"}'


def runtime_of(instance: PrometheusInstance, launch: object = None) -> PrometheusRuntime:
    """The runtime of ``instance`` (through the registry), as the concrete class the engine drives."""
    from bdr.runtime import prometheus_runtime
    from bdr.runtime.base import Launch

    runtime = prometheus_runtime(instance, launch if isinstance(launch, Launch) else None)
    assert isinstance(runtime, PrometheusRuntime)
    return runtime


def series_in(client: PrometheusClient, oldest_ms: int, newest_ms: int) -> int:
    """Distinct series with a sample in ``[oldest_ms, newest_ms]``, as the server answers it.

    Raises :class:`~bdr.errors.ServiceError` when the server refuses the query (a TSDB past
    ``--query.max-samples``): the caller records the count as unknown."""
    window = newest_ms - oldest_ms + 1
    value = client.scalar(f"count(last_over_time({ALL_SERIES}[{window}ms]))", newest_ms)
    return int(value) if value is not None else 0


def newest_sample(client: PrometheusClient, newest_ms: int) -> int | None:
    """The time (ms) of the newest sample at or before ``newest_ms`` (within the 5-minute lookback)."""
    named = f'label_replace({ALL_SERIES}, "bdr_name", "$1", "__name__", "(.+)")'  # timestamp() drops the name
    value = client.scalar(f"max(timestamp({named}))", newest_ms)
    return round(value * 1000) if value is not None else None


def free_bytes(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def need_room(path: Path, need: int, name: str) -> None:
    """Raise when ``path``'s file system has less than ``need`` bytes free."""
    from bdr.util.units import format_bytes

    free = free_bytes(path)
    if free < need:
        raise StorageError(detail=f"{format_bytes(free)} free on {path}, restoring Prometheus {name} needs "
                           f"{format_bytes(need)}: free space there and run again; nothing was changed")

