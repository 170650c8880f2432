"""The ``drill:`` section of bdr.yaml: how the live restore test runs (``bdr drill --live``).

Per source (``redis``, ``qdrant``, ``config``): which instance is production (only read,
default: the source's default instance), where the newest good set is restored (``target``:
an instance of bdr.yaml that is not production; for config a scratch directory; default: the
instance named ``test`` when there is one, else a temporary one bdr starts and removes), and
the application checks to run on the restored data, in the spirit of Veeam SureBackup's
application tests and the old runbook's ``GET test_key``::

    drill:
      redis:
        target: test
        checks: [{key_exists: test_key}, {min_dbsize: 1000}]
      qdrant:
        checks: [{min_points: {collection: documents, count: 100}}]
      config:
        checks: [{file_parses: docker-compose.yml}, {file_parses: {path: .env, format: env}}]
      prometheus:                  # only with a prometheus: section; restored into a temporary server
        checks: [{min_series: 1000}]
      grafana:                     # only with a grafana: section; restored into a scratch directory
        checks: [{dashboard_exists: agents-overview}]
      evidence_keep: 1y            # how long reports stay in the repository's evidence/
      remediation_due: 14d         # due date of a new remediation item
      signing_key: /etc/bdr/drill-signing.key   # Ed25519 (bdr report keygen FILE); records unsigned without
      schedule: "0 6 1 * *"        # the monthly restore test (cron)

Parsed by :func:`parse_drill` (called by :func:`bdr.config.parse_config` once
:mod:`bdr.config.shape` has checked the section's keys and the kind of each value); every
mistake is one :class:`~bdr.errors.ConfigError` naming the key. This module imports nothing of bdr's
but its errors, durations and the source catalogue, so the configuration can use it without a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bdr.errors import ConfigError
from bdr.sources import all_sources
from bdr.util.durations import parse_duration

LIVE_SOURCES = tuple(s.name for s in all_sources() if s.live)
"""The datastores (:mod:`bdr.sources`): each always takes part, and ``live_system`` adds their restores up."""
OBSERVED_SOURCES = tuple(s.name for s in all_sources() if not s.live)
"""Monitoring: tested only when bdr.yaml has its section, restored into scratch space, never into an instance."""
DRILL_SOURCES = (*LIVE_SOURCES, *OBSERVED_SOURCES)
FORMATS = ("yaml", "json", "toml", "env")
CHECK_SOURCES: Mapping[str, str] = {
    "key_exists": "redis",
    "min_dbsize": "redis",
    "collection_exists": "qdrant",
    "min_points": "qdrant",
    "file_exists": "config",
    "file_parses": "config",
    "min_series": "prometheus",
    "dashboard_exists": "grafana",
}
"""Each application check and the source whose restored data it runs on."""
DEFAULT_SCHEDULE = "0 6 1 * *"
OWNER_KEYS = (*DRILL_SOURCES, "default")


@dataclass(frozen=True, slots=True)
class AppCheck:
    """One application check on the restored data: ``key_exists``, ``min_dbsize``, ``min_points`` ..."""

    kind: str
    key: str = ""
    """key_exists: the Redis key."""
    db: int = 0
    count: int = 0
    """min_dbsize: keys (all databases, or ``db``); min_points: points."""
    collection: str = ""
    path: str = ""
    """file_exists / file_parses: relative to the configuration root."""
    format: str = ""
    """file_parses: yaml, json, toml or env (default: from the file's extension)."""
    all_dbs: bool = True
    uid: str = ""
    """dashboard_exists: the dashboard's uid."""

    def describe(self) -> str:
        if self.kind == "key_exists":
            return f"key {self.key!r} exists (db {self.db})"
        if self.kind == "min_dbsize":
            where = "all databases" if self.all_dbs else f"db {self.db}"
            return f"at least {self.count} keys ({where})"
        if self.kind == "collection_exists":
            return f"collection {self.collection!r} exists"
        if self.kind == "min_points":
            return f"collection {self.collection!r} holds at least {self.count} points"
        if self.kind == "file_exists":
            return f"{self.path} exists"
        if self.kind == "min_series":
            return f"at least {self.count} series"
        if self.kind == "dashboard_exists":
            return f"dashboard {self.uid!r} exists"
        return f"{self.path} parses as {self.format}"


@dataclass(frozen=True, slots=True)
class SourceDrill:
    """How one source is restore-tested."""

    source: str
    enabled: bool = True
    production: str | None = None
    """The instance only read (default: the source's default instance)."""
    target: str | None = None
    """redis/qdrant: an instance of bdr.yaml; config: a directory; None: ``test`` when defined, else temporary."""
    checks: tuple[AppCheck, ...] = ()


def _default_sources() -> dict[str, SourceDrill]:
    return {source: SourceDrill(source) for source in LIVE_SOURCES}


@dataclass(frozen=True, slots=True)
class DrillSettings:
    """The whole ``drill:`` section."""

    sources: Mapping[str, SourceDrill] = field(default_factory=_default_sources)
    evidence_keep: float = 365 * 86400.0
    remediation_due: float = 14 * 86400.0
    signing_key: str | None = None
    schedule: str = DEFAULT_SCHEDULE
    reports: str = "reports"

    def source(self, name: str) -> SourceDrill:
        return self.sources.get(name) or SourceDrill(name)


def _fail(path: str, detail: str) -> ConfigError:
    return ConfigError(path=path, detail=detail)


def _count(value: Any, where: str, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(path, f"{where} must be a whole number >= 0, got {value!r}")
    return value


def _name(value: Any, where: str, path: str, example: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, f"{where} must be a non-empty string, e.g. {example}")
    return value


def format_of(file: str) -> str | None:
    """The parse format a file's name implies (None: give ``format:``)."""
    name = file.rsplit("/", 1)[-1].lower()
    if name.endswith((".yml", ".yaml")):
        return "yaml"
    if name.endswith(".json"):
        return "json"
    if name.endswith(".toml"):
        return "toml"
    if name == ".env" or name.startswith(".env.") or name.endswith(".env"):
        return "env"
    return None


def _check(source: str, item: Any, where: str, path: str) -> AppCheck:
    if not isinstance(item, Mapping) or len(item) != 1:
        raise _fail(path, f"{where} must be one check, e.g. {{key_exists: test_key}} (known: "
                    f"{', '.join(k for k, s in CHECK_SOURCES.items() if s == source)})")
    ((kind, value),) = item.items()
    kind = str(kind)
    if kind not in CHECK_SOURCES:
        raise _fail(path, f"{where}: unknown check {kind!r} (known: {', '.join(CHECK_SOURCES)})")
    if CHECK_SOURCES[kind] != source:
        known = ", ".join(k for k, s in CHECK_SOURCES.items() if s == source)
        raise _fail(path, f"{where}: {kind} is a {CHECK_SOURCES[kind]} check, not a {source} one (known for "
                    f"{source}: {known})")
    args: dict[str, Any] = dict(value) if isinstance(value, Mapping) else {}
    scalar = None if isinstance(value, Mapping) else value
    allowed = {"key_exists": {"key", "db"}, "min_dbsize": {"count", "db"}, "collection_exists": {"collection"},
               "min_points": {"collection", "count"}, "file_exists": {"path"}, "file_parses": {"path", "format"},
               "min_series": {"count"}, "dashboard_exists": {"uid"}}
    unknown = sorted(set(args) - allowed[kind])
    if unknown:
        raise _fail(path, f"unknown key(s) in {where}.{kind}: {', '.join(unknown)} (known: "
                    f"{', '.join(sorted(allowed[kind]))})")
    db = _count(args.get("db", 0), f"{where}.{kind}.db", path)
    if kind == "key_exists":
        return AppCheck(kind, key=_name(args.get("key", scalar), f"{where}.key_exists", path, "test_key"), db=db)
    if kind == "min_dbsize":
        count = _count(args.get("count", scalar), f"{where}.min_dbsize" + (".count" if args else ""), path)
        return AppCheck(kind, count=count, db=db, all_dbs="db" not in args)
    if kind == "collection_exists":
        return AppCheck(kind, collection=_name(args.get("collection", scalar), f"{where}.collection_exists", path,
                                               "documents"))
    if kind == "min_series":
        return AppCheck(kind, count=_count(args.get("count", scalar), f"{where}.min_series", path))
    if kind == "dashboard_exists":
        return AppCheck(kind, uid=_name(args.get("uid", scalar), f"{where}.dashboard_exists", path, "node-exporter"))
    if kind == "min_points":
        if scalar is not None:
            raise _fail(path, f"{where}.min_points needs a collection and a count, e.g. "
                        "{min_points: {collection: documents, count: 100}}")
        return AppCheck(kind, collection=_name(args.get("collection"), f"{where}.min_points.collection", path,
                                               "documents"),
                        count=_count(args.get("count"), f"{where}.min_points.count", path))
    file = _name(args.get("path", scalar), f"{where}.{kind}" + (".path" if args else ""), path, "docker-compose.yml")
    parts = file.replace("\\", "/").split("/")
    if file.startswith(("/", "~")) or ".." in parts:
        raise _fail(path, f"{where}.{kind}: {file!r} must be relative to files.root and stay inside it")
    if kind == "file_exists":
        return AppCheck(kind, path=file)
    fmt = args.get("format") or format_of(file)
    if fmt is None:
        raise _fail(path, f"{where}.file_parses: cannot tell how to parse {file!r} from its name; add format: one "
                    f"of {', '.join(FORMATS)}")
    if fmt not in FORMATS:
        raise _fail(path, f"{where}.file_parses.format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return AppCheck(kind, path=file, format=str(fmt))


def _source(source: str, section: Any, path: str) -> SourceDrill:
    where = f"drill.{source}"
    if section is None:
        return SourceDrill(source)
    if isinstance(section, bool):
        return SourceDrill(source, enabled=section)
    enabled = section.get("enabled", True)
    values: dict[str, str | None] = {}
    for key in ("target", "production"):
        value = section.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise _fail(path, f"{where}.{key} must name " + ("a directory" if source == "config" and key == "target"
                                                              else "an instance of bdr.yaml") + f", got {value!r}")
        values[key] = value
    if source in OBSERVED_SOURCES and values["target"] is not None:
        raise _fail(path, f"drill.{source}.target: a {source} set is restored into a temporary "
                    + ("Prometheus" if source == "prometheus" else "scratch directory") + " bdr removes; leave it out")
    if source == "config" and values["production"] is not None:
        raise _fail(path, "drill.config.production is files.root: set that instead")
    checks = section.get("checks") or []
    if not isinstance(checks, list):
        raise _fail(path, f"{where}.checks must be a list of checks, e.g. [{{key_exists: test_key}}]")
    parsed = tuple(_check(source, item, f"{where}.checks[{n}]", path) for n, item in enumerate(checks))
    return SourceDrill(source, enabled, values["production"], values["target"], parsed)


def parse_drill(section: Any, path: str) -> DrillSettings:
    """``drill:`` of bdr.yaml as :class:`DrillSettings`; a :class:`ConfigError` naming the first bad key."""
    if section is None:
        return DrillSettings()
    sources = {source: _source(source, section.get(source), path) for source in DRILL_SOURCES}
    durations: dict[str, float] = {}
    for key, default in (("evidence_keep", 365 * 86400.0), ("remediation_due", 14 * 86400.0)):
        try:
            durations[key] = parse_duration(section.get(key, default))
        except ValueError as exc:
            raise _fail(path, f"drill.{key}: {exc}") from exc
        if durations[key] <= 0:
            raise _fail(path, f"drill.{key} must be longer than 0, e.g. 1y")
    signing_key = section.get("signing_key")
    if signing_key is not None and not signing_key.strip():
        raise _fail(path, "drill.signing_key must be the path of an Ed25519 key file (bdr report keygen FILE)")
    schedule = section.get("schedule", DEFAULT_SCHEDULE)
    if not isinstance(schedule, str) or len(schedule.split()) != 5:
        raise _fail(path, f"drill.schedule must be a cron expression of 5 fields, e.g. {DEFAULT_SCHEDULE!r} "
                    f"(06:00 on the 1st of each month), got {schedule!r}")
    reports = section.get("reports", "reports")
    if not reports.strip():
        raise _fail(path, "drill.reports must be a directory path")
    return DrillSettings(sources, durations["evidence_keep"], durations["remediation_due"], signing_key, schedule,
                         reports)


def parse_owners(section: Any, path: str) -> dict[str, str]:
    """``owners:`` of bdr.yaml: who fixes what a drill finds, per source (and ``default``)."""
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise _fail(path, "owners must be a mapping of source: owner, e.g. {redis: platform-team}")
    owners: dict[str, str] = {}
    for key, value in section.items():
        if key not in OWNER_KEYS:
            raise _fail(path, f"owners.{key}: unknown source (known: {', '.join(OWNER_KEYS)})")
        if not isinstance(value, str) or not value.strip():
            raise _fail(path, f"owners.{key} must name a person or team, got {value!r}")
        owners[str(key)] = value.strip()
    return owners


def check_targets(settings: DrillSettings, redis: Mapping[str, Any], redis_default: str, qdrant: Mapping[str, Any],
                  qdrant_default: str, files_root: str, path: str) -> None:
    """The instances the drill names exist, and no restore target is production (called once all is parsed)."""
    instances = {"redis": (redis, redis_default), "qdrant": (qdrant, qdrant_default)}
    for source, (known, default) in instances.items():
        drill = settings.source(source)
        production = drill.production or default
        for key, name in (("production", drill.production), ("target", drill.target)):
            if name is not None and name not in known:
                raise _fail(path, f"drill.{source}.{key}: no {source} instance named {name!r} (known: "
                            f"{', '.join(known) or 'none'})")
        if drill.target is not None and drill.target == production:
            raise _fail(path, f"drill.{source}.target: {drill.target!r} is production, which the drill only reads; "
                        f"name a test instance (or leave target out for a temporary one)")
    config_target = settings.source("config").target
    if config_target is not None and config_target.rstrip("/") in (files_root.rstrip("/"), "."):
        raise _fail(path, "drill.config.target is files.root, the production configuration; name a scratch "
                    "directory (or leave it out for a temporary one)")
