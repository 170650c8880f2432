"""Where a Grafana set's files come from and go back to: the names inside a set, the files on this host.

A module below :mod:`.engine` and :mod:`.restore`, so the restore does not reach back into the
engine for them (the engine hands itself to its restorers instead).
"""

from __future__ import annotations

import logging
from pathlib import Path

from bdr.config import Config, FilesSource, GrafanaInstance
from bdr.engines.files.selection import collect

logger = logging.getLogger(__name__)

DB_NAME = "grafana.db"
"""The database's name inside a set (in the encrypted ``secrets.tar.zst``)."""
CONF_PREFIX = "conf/"
"""grafana.ini as ``conf/grafana.ini``, the provisioning directory as ``conf/provisioning/...``."""
INI_NAME = f"{CONF_PREFIX}grafana.ini"
PROVISIONING_PREFIX = f"{CONF_PREFIX}provisioning/"
EXPORT_PREFIX = "dashboards/"
"""Each dashboard's JSON from the HTTP API as ``dashboards/<uid>.json`` (plain: dashboards hold no secret)."""


def db_path_of(config: Config, instance: GrafanaInstance) -> Path:
    return config.resolve(instance.db_path)


def conf_files(config: Config, instance: GrafanaInstance) -> dict[str, Path]:
    """Name in the set -> file on this host, for grafana.ini and every file of the provisioning directory."""
    files: dict[str, Path] = {}
    if instance.config_file:
        ini = config.resolve(instance.config_file)
        if ini.is_file():
            files[INI_NAME] = ini
        else:
            logger.warning("grafana %s: config_file %s does not exist", instance.name, ini)
    if instance.provisioning:
        root = config.resolve(instance.provisioning)
        if root.is_dir():
            found = collect(root.parent, FilesSource(name="grafana", root=str(root.parent), paths=(f"{root.name}/",),
                                                     secrets=()))
            prefix = f"{root.name}/"
            for relative in found.files:
                files[PROVISIONING_PREFIX + relative[len(prefix):]] = root.parent / relative
            for skipped in found.skipped:
                logger.warning("grafana %s: skipped %s", instance.name, skipped)
        else:
            logger.warning("grafana %s: provisioning directory %s does not exist", instance.name, root)
    return files


def live_path(config: Config, instance: GrafanaInstance, name: str) -> Path | None:
    """Where the set's file ``name`` belongs on this host (None: not a file bdr.yaml places)."""
    if name == DB_NAME:
        return db_path_of(config, instance)
    if name == INI_NAME and instance.config_file:
        return config.resolve(instance.config_file)
    if name.startswith(PROVISIONING_PREFIX) and instance.provisioning:
        return config.resolve(instance.provisioning) / name[len(PROVISIONING_PREFIX):]
    return None
