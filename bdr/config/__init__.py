"""The policy file ``bdr.yaml``: sources to back up, where backups go, targets and retention.

Every section is optional and has embedded defaults, so ``bdr`` runs with no file at all
(a local Redis on 127.0.0.1:6379, an embedded Qdrant, a repository in ``./backups``).
Secrets never live here: a password is named by the environment variable or file that
holds it (``password_env``, ``password_file``).

A file is read in two passes: :mod:`bdr.config.shape` checks every key and the kind of every
value (pydantic models built from :mod:`bdr.config.settings`, the same ones ``bdr init
--schema`` publishes as a JSON Schema), then :func:`parse_config` builds the settings and
checks the rules between them. Either pass names the first mistake by its key path, and
:func:`load_config` adds its line in the file (``bdr.yaml:12``). ``bdr init`` writes a
commented example.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_type_hints

import yaml

from bdr.config.locate import line_of, path_of
from bdr.config.settings import (
    ARCHIVE_CLASSES,
    ARCHIVE_DESTINATIONS,
    COMMAND_NAMES,
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    DEFAULT_RETENTION,
    DEFAULT_SCHEDULE,
    MAX_CONCURRENCY,
    RETENTION_KINDS,
    RETENTION_LOCATIONS,
    SCHEDULE_KINDS,
    SCHEDULE_OPTIONS,
    SCHEDULE_SOURCES,
    SSE_MODES,
    STORAGE_CLASSES,
    ArchiveSettings,
    Config,
    EncryptionSettings,
    FilesSource,
    GrafanaInstance,
    LintSettings,
    PrometheusInstance,
    QdrantInstance,
    RedisInstance,
    RemoteSettings,
    RetentionRule,
    ScheduleEntry,
    Targets,
    TlsSettings,
)
from bdr.drill.settings import check_targets, parse_drill, parse_owners
from bdr.errors import ConfigError
from bdr.sources import all_sources

__all__ = [
    "ARCHIVE_CLASSES", "ARCHIVE_DESTINATIONS", "COMMAND_NAMES", "CONFIG_ENV", "DEFAULT_CONFIG_NAME",
    "DEFAULT_RETENTION", "DEFAULT_SCHEDULE", "MAX_CONCURRENCY", "RETENTION_KINDS", "RETENTION_LOCATIONS",
    "SCHEDULE_KINDS", "SCHEDULE_OPTIONS", "SCHEDULE_SOURCES", "SSE_MODES", "STORAGE_CLASSES", "ArchiveSettings",
    "Config", "EncryptionSettings", "FilesSource", "GrafanaInstance", "LintSettings", "PrometheusInstance",
    "QdrantInstance", "RedisInstance", "RemoteSettings", "RetentionRule", "ScheduleEntry", "Targets",
    "TlsSettings", "find_config", "load_config", "parse_config",
]


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    return get_type_hints(cls)


def _build(cls: Any, values: Mapping[str, Any], **extra: Any) -> Any:
    """A settings dataclass from checked values (:func:`bdr.config.shape.check`): a nested settings mapping
    becomes its dataclass (``tls``), and the keys written for a mapping setting are added to its default
    ones (``targets.rto``, ``max_backup_age``, ``lint.backup_duration``)."""
    hints = _hints(cls)
    specs = {spec.name: spec for spec in dataclasses.fields(cls)}
    built = dict(extra)
    for key, value in values.items():
        hint, spec = hints[key], specs[key]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            value = _build(hint, value)
        elif isinstance(value, Mapping) and spec.default_factory is not dataclasses.MISSING:
            value = {**spec.default_factory(), **value}
        built[key] = value
    return cls(**built)


def _instance_sections() -> dict[str, tuple[type[Any], bool]]:
    """Each section of instances (a source of :mod:`bdr.sources` with named instances): its settings class, and
    whether a section that is there must define an instance (an optional source's may be empty)."""
    hints = _hints(Config)
    return {s.section: (get_args(hints[s.section])[1], not s.optional) for s in all_sources() if s.instanced}


def _instances(section: Mapping[str, Any] | None, cls: type[Any], kind: str, required: bool,
               path: str) -> tuple[dict[str, Any], str]:
    """The instances of one section, each validated, and the default one's name."""
    instances: dict[str, Any] = {}
    for name, values in (section or {}).items():
        if name == "default":
            continue
        instance = _build(cls, values, name=str(name))
        instance.validate(path)
        instances[str(name)] = instance
    if not instances and required:
        raise ConfigError(path=path, detail=f"{kind}: define at least one instance")
    default = (section or {}).get("default")
    chosen = default or ("production" if "production" in instances else next(iter(instances), ""))
    if instances and chosen not in instances:
        raise ConfigError(path=path, detail=f"{kind}.default names unknown instance {chosen!r}")
    return instances, chosen


def _retention(section: Mapping[str, Any], path: str) -> tuple[RetentionRule, ...]:
    """``retention:`` as rules: ``daily: {keep: 30d, locations: [local, s3], count: 30}``."""
    rules = []
    for kind, rule in section.items():
        where = f"retention.{kind}"
        keep, count = rule.get("keep", 0.0), rule.get("count")
        if kind == "last" and count is None:
            raise ConfigError(path=path, detail=f"{where} needs count: the number of newest sets to keep")
        if keep <= 0 and (kind in ("within", "safety") or (kind != "last" and count is None)):
            raise ConfigError(path=path, detail=f"{where} needs keep: a duration such as 30d")
        rules.append(RetentionRule(str(kind), keep, tuple(rule.get("locations", ("local",))), count))
    return tuple(rules)


def _schedule_entry(key: str, options: Mapping[str, Any], path: str) -> ScheduleEntry:
    """One ``schedule:`` entry; a key bdr does not know stays a backup of an unknown source (``bdr lint``
    warns, ``bdr schedule`` refuses it)."""
    where = f"schedule.{key}"
    cron = options["cron"]
    if not cron.strip():
        raise ConfigError(path=path, detail=f"{where} needs a cron expression, e.g. \"*/30 * * * *\" "
                          f"(or cron: in a mapping), got {cron!r}")
    head, _, rest = key.partition("/")
    values: dict[str, Any] = {"name": key, "cron": cron}
    if head == "offsite":
        source = rest or str(options.get("source") or "all")
        if source not in SCHEDULE_SOURCES:
            raise ConfigError(path=path, detail=f"{where}: source must be one of {', '.join(SCHEDULE_SOURCES)}, "
                              f"got {source!r}")
        remote = options.get("remote")
        if remote is not None and not remote.startswith("s3://"):
            raise ConfigError(path=path, detail=f"{where}.remote must be an s3:// url, got {remote!r}")
        values.update(kind="offsite", source=source, remote=remote)
    elif head in ("prune", "verify", "drill") and not rest:
        values.update(kind=head, source=head)
    else:
        values.update(kind="backup", source=head, instance=rest or None)
    if "source" in options and head != "offsite":
        raise ConfigError(path=path, detail=f"{where}.source is for offsite entries")
    if "remote" in options and head != "offsite":
        raise ConfigError(path=path, detail=f"{where}.remote is for offsite entries (bdr backup SOURCE --remote)")
    for flag, kinds in (("restore_test", ("verify",)), ("compress", ("backup", "offsite"))):
        if flag in options:
            if values["kind"] not in kinds:
                raise ConfigError(path=path, detail=f"{where}.{flag} is for {' and '.join(kinds)} entries")
            values[flag] = options[flag]
    if options.get("wait_lock") is not None:
        values["wait_lock"] = options["wait_lock"]
    return ScheduleEntry(**values)


def _schedules(section: Mapping[str, Any], path: str) -> tuple[ScheduleEntry, ...]:
    return tuple(_schedule_entry(str(key), options, path) for key, options in section.items())


def _archive(section: Mapping[str, Any], config: Config, path: str) -> dict[str, ArchiveSettings]:
    """``archive: {redis: {NAME: {segment_seconds, segment_bytes, to, encrypt, max_lag, keep, spool_dir}}}``."""
    out: dict[str, ArchiveSettings] = {}
    for name, values in (section.get("redis") or {}).items():
        archived = _build(ArchiveSettings, values, name=str(name))
        archived.validate(path, config)
        out[str(name)] = archived
    return out


def parse_config(data: Mapping[str, Any] | None, path: Path | None = None) -> Config:
    """Check a parsed ``bdr.yaml`` (its shape, then the rules between settings) and fill in the defaults."""
    label = str(path) if path else "embedded defaults"
    if not data:
        return Config(path=path)
    from bdr.config.shape import ShapeError, check

    try:
        data = check(data)
    except ShapeError as exc:
        raise ConfigError(path=label, detail=exc.text, loc=exc.loc) from None
    sections = _instance_sections()
    parsers = {"retention": _retention, "schedule": _schedules, "owners": parse_owners, "drill": parse_drill}
    parsed: dict[str, Any] = {}
    written: dict[str, Any] = {}
    for key, value in data.items():
        if key in sections:
            cls, required = sections[key]
            parsed[key], parsed[f"{key}_default"] = _instances(value, cls, key, required, label)
        elif key in parsers:
            parsed[key] = parsers[key](value or {}, label)
        elif value is not None and key != "archive":
            written[key] = value
    config: Config = _build(Config, written, path=path, **parsed)
    for settings in (config.files, config.encryption, config.remote):
        settings.validate(label)
    if data.get("archive"):
        config = dataclasses.replace(config, archive=_archive(data["archive"], config, label))
    check_targets(config.drill, config.redis, config.redis_default, config.qdrant, config.qdrant_default,
                  config.files.root, label)
    return config


def find_config(explicit: str | Path | None = None) -> Path | None:
    """The config file to use: ``--config``, then ``$BDR_CONFIG``, then ``./bdr.yaml``; None if absent."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(path=str(path), detail="file not found; run `bdr init` to write an example")
        return path
    env = os.environ.get(CONFIG_ENV)
    if env:
        return find_config(env)
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.is_file() else None


_KEY_PATH = re.compile(r"^(?:unknown key\(s\) in )?([A-Za-z_][\w-]*(?:\.[\w/@-]+|\[\d+\])*)")


def _placed(exc: ConfigError, path: Path, text: str) -> ConfigError:
    """``exc`` with the line of the key it names: ``configuration error in bdr.yaml:12: redis.production...``."""
    if "detail" not in exc.fields:
        return exc
    detail = str(exc.fields["detail"])
    loc = exc.fields.get("loc")
    if loc is None:
        match = _KEY_PATH.match(detail)
        loc = path_of(match.group(1)) if match else ()
    line = line_of(text, loc) if loc else None
    return ConfigError(path=f"{path}:{line}" if line else str(path), detail=detail, loc=loc, line=line)


def load_config(explicit: str | Path | None = None) -> Config:
    """Load and validate the policy file, or the embedded defaults when there is none."""
    path = find_config(explicit)
    if path is None:
        return Config()
    try:
        text = path.read_text()
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(path=str(path), detail=f"invalid YAML{where}: {getattr(exc, 'problem', exc)}",
                          line=mark.line + 1 if mark else None) from exc
    except OSError as exc:
        raise ConfigError(path=str(path), detail=exc.strerror or str(exc)) from exc
    if not isinstance(data, Mapping):
        raise ConfigError(path=str(path), detail="the top level must be a mapping")
    try:
        return parse_config(data, path.resolve())
    except ConfigError as exc:
        raise _placed(exc, path.resolve(), text) from None
