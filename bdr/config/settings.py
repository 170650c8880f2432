"""The settings of ``bdr.yaml`` as frozen dataclasses: what each section holds once parsed.

Every section is optional and has embedded defaults, so ``bdr`` runs with no file at all
(a local Redis on 127.0.0.1:6379, an embedded Qdrant, a repository in ``./backups``).
Secrets never live here: a password is named by the environment variable or file that
holds it (``password_env``, ``password_file``).

These classes are the one description of the file: :mod:`bdr.config.shape` builds the
pydantic models that check a file (and its JSON Schema) from their fields, so a field added
here is accepted, checked and documented there. A ``float`` is always a duration in seconds
(written ``90``, ``30s``, ``5m``, ``1d``); :data:`ARGV`, :data:`SIZE` and :data:`ONE_OR_MORE`
mark the fields whose written form their type does not say. Each class's ``validate``
checks what the types cannot: settings that depend on one another, names that must exist.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

from bdr.drill.settings import DrillSettings
from bdr.errors import ConfigError, UnknownTarget
from bdr.sources import source_names


@dataclass(frozen=True, slots=True)
class Form:
    """How a setting is written in bdr.yaml when its type alone does not say it."""

    name: str


ARGV = Form("argv")
"""A list of arguments, or a command line split as a shell would split it (never run by one)."""
SIZE = Form("size")
"""A whole number of bytes, or a number with a unit (``16MiB``, ``512k``)."""
ONE_OR_MORE = Form("one-or-more")
"""A list of strings, or one string for a list of one."""

Argv = Annotated[tuple[str, ...], ARGV]
Commands = Mapping[str, Argv]

DEFAULT_CONFIG_NAME = "bdr.yaml"
CONFIG_ENV = "BDR_CONFIG"


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS for a Redis connection (``rediss://`` urls turn it on too)."""

    enabled: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True


COMMAND_NAMES = ("start", "stop", "status")
"""The commands of ``runtime: command``."""
SECRET_OPTIONS = ("requirepass", "masterauth", "tls-key-file-pass", "tls-client-key-file-pass")


@dataclass(frozen=True, slots=True)
class RedisInstance:
    """One Redis instance bdr backs up or restores into (``production``, ``test`` ...)."""

    name: str
    url: str = "redis://127.0.0.1:6379/0"
    username: str | None = None
    password_env: str | None = "REDIS_PASSWORD"
    password_file: str | None = None
    tls: TlsSettings = field(default_factory=TlsSettings)
    runtime: str = "process"
    """How bdr stops and starts the instance for a restore: ``process`` (bdr starts it again the way it was
    launched), ``systemd`` (``unit``), ``command`` (``commands``: supervisord, s6, k8s ...), ``docker``."""
    data_dir: str | None = None
    """Where the data files live on this host; asked from the server (``CONFIG GET dir``) when not set."""
    config_file: str | None = None
    """process runtime: redis.conf to start the instance with when bdr never saw it run (a running one is
    started again the way it was launched); systemd/command: the config file as bdr reads it, for the
    settings of a stopped server."""
    start_args: Argv = ()
    """process runtime: extra ``redis-server`` arguments, after ``config_file`` (never a password)."""
    unit: str | None = None
    """systemd runtime: the unit that runs Redis (``redis-server.service``)."""
    systemctl: Argv = ("systemctl",)
    """systemd runtime: the systemctl argv prefix (``[systemctl, --user]``, ``[sudo, systemctl]``,
    ``[systemctl, -M, machine]``, ``[docker, exec, <container>, systemctl]``)."""
    commands: Commands = field(default_factory=dict)
    """command runtime: ``start``, ``stop`` (required) and ``status`` (exit 0 = running) argv, e.g.
    ``supervisorctl -c /etc/supervisor/supervisord.conf stop redis``."""
    log_file: str | None = None
    """process runtime: where stdout/stderr of a server bdr starts go (one file per instance, appended; default
    /var/log/bdr/redis-<name>.log as root, ~/.local/state/bdr/redis-<name>.log otherwise)."""
    container: str | None = None
    """docker runtime: the service container (``agentic-redis``)."""
    volume: str | None = None
    """docker runtime: the named volume holding the data (found from the container's mounts when not set)."""
    image: str | None = None
    """docker runtime: image for new containers, and for helper containers when the container's own image has
    no shell tools (default: ``redis:7-alpine`` when present, else ``bdr/redis:<version>``, built offline by
    ``bdr images build redis``)."""
    container_dir: str | None = None
    """docker runtime: the data directory inside the container (default: where ``volume`` is mounted, else /data)."""
    method: str = "rdb"
    """Backup method: ``rdb`` (BGSAVE + copy of the data directory) or ``replication``."""
    backup: bool = True
    """False for an instance bdr only restores into (the monthly restore test's ``test``): ``bdr status`` and
    ``bdr schedule`` expect no backups of it, and ``latest`` for it is the default instance's newest set."""
    digest_max_keys: int = 200_000
    """Record ``DEBUG DIGEST`` only up to this many keys: the command blocks the server for its
    whole run (about 3 s per million keys); bigger instances are verified by key counts.
    0: never, -1: always."""
    save_timeout: float = 600.0

    def validate(self, path: str) -> None:
        """Raise :class:`ConfigError` naming the first runtime setting that does not go with the others (the kind
        of each value and the runtime's name are checked before, by :mod:`bdr.config.shape`)."""
        where = f"redis.{self.name}"
        if self.runtime == "systemd":
            if not isinstance(self.unit, str) or not re.fullmatch(r"[A-Za-z0-9:_.@\\-]+", self.unit):
                raise ConfigError(path=path, detail=f"{where}: runtime systemd needs unit: the unit that runs "
                                  "Redis (e.g. redis-server.service)")
        elif self.unit is not None:
            raise ConfigError(path=path, detail=f"{where}.unit is for runtime: systemd (runtime is {self.runtime})")
        if not self.systemctl or not all(isinstance(a, str) and a for a in self.systemctl):
            raise ConfigError(path=path, detail=f"{where}.systemctl must be an argv prefix, e.g. [systemctl, --user]")
        if self.systemctl != ("systemctl",) and self.runtime != "systemd":
            raise ConfigError(path=path, detail=f"{where}.systemctl is for runtime: systemd")
        if self.runtime == "command":
            unknown = sorted(set(self.commands) - set(COMMAND_NAMES))
            if unknown:
                raise ConfigError(path=path, detail=f"{where}.commands: unknown command(s) {', '.join(unknown)} "
                                  f"(known: {', '.join(COMMAND_NAMES)})")
            for name in ("start", "stop"):
                if not self.commands.get(name):
                    raise ConfigError(path=path, detail=f"{where}: runtime command needs commands.{name}, e.g. "
                                      f"{{start: supervisorctl start redis, stop: supervisorctl stop redis, "
                                      "status: supervisorctl status redis}")
            for name, argv in self.commands.items():
                if not argv or not all(isinstance(a, str) for a in argv):
                    raise ConfigError(path=path, detail=f"{where}.commands.{name} must be an argv list or a "
                                      "command line")
        elif self.commands:
            raise ConfigError(path=path, detail=f"{where}.commands is for runtime: command (runtime is {self.runtime})")
        secret = [a for a in self.start_args if a.lower().lstrip("-") in SECRET_OPTIONS and a.startswith("--")]
        if secret:
            raise ConfigError(path=path, detail=f"{where}.start_args must not hold {secret[0]}: a secret does not "
                              "belong in bdr.yaml or an argv; put it in the config file, and bdr's password in "
                              "password_env/password_file")
        for key in ("config_file", "data_dir", "log_file"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(path=path, detail=f"{where}.{key} must be a path")

    def password(self) -> str | None:
        """The password from ``password_file`` or ``password_env``; never from the file itself."""
        if self.password_file:
            try:
                return Path(self.password_file).read_text().strip() or None
            except OSError as exc:
                raise ConfigError(
                    path=self.password_file, detail=f"cannot read password file: {exc.strerror}"
                ) from exc
        if self.password_env:
            return os.environ.get(self.password_env) or None
        return None


@dataclass(frozen=True, slots=True)
class QdrantInstance:
    """One Qdrant: a server (``url``) or the embedded engine (``path``, qdrant-client local mode).

    A ``url`` wins over ``path``. The embedded engine locks its directory while a client has
    it open, so bdr opens and closes its own client for every operation and reports a clear
    error when the application holds the directory.
    """

    name: str
    url: str | None = None
    path: str | None = "./data/qdrant"
    api_key_env: str | None = "QDRANT_API_KEY"
    api_key_file: str | None = None
    method: str = "logical"
    """``logical`` (server or embedded), ``snapshot`` (server) or ``volume`` (stopped service)."""
    collections: tuple[str, ...] = ()
    """Collections to back up; all when empty."""
    keep_server_snapshot: bool = False
    """snapshot method: leave the snapshot on the server after downloading it."""
    full_snapshot: bool = False
    """snapshot method: one full-storage snapshot (all collections and aliases) instead of one per collection."""
    inspect_snapshots: bool = True
    """snapshot method: open each downloaded snapshot with qdrant-edge to record its exact point count and a
    sample of points (needs a temporary copy of the snapshot on local disk)."""
    batch_size: int = 1024
    """logical method: points per scroll/upsert batch."""
    parallel: int = 4
    """logical method: concurrent upsert batches into a server (the embedded engine uses one)."""
    sample_size: int = 64
    """Points compared one by one after a snapshot restore and by ``bdr verify`` of a snapshot."""
    runtime: str = "process"
    container: str | None = None
    """docker runtime: the service container (``agentic-qdrant``)."""
    volume: str | None = None
    """docker runtime: the named volume of /qdrant/storage (found from the container's mounts when not set)."""
    image: str | None = None
    """docker runtime: image for new containers (default: a local ``qdrant/qdrant``)."""
    container_dir: str | None = None
    """docker runtime: the storage directory inside the container (default: /qdrant/storage)."""
    storage_dir: str | None = None
    """volume method on a server: the Qdrant storage directory (the service must be stopped)."""
    timeout: float = 300.0
    backup: bool = True
    """False for an instance bdr only restores into (``test``): not expected to have backups."""

    @property
    def embedded(self) -> bool:
        return not self.url

    def validate(self, path: str) -> None:
        """Nothing beyond the shape of the file (:mod:`bdr.config.shape`: the runtime is one it knows)."""

    def api_key(self) -> str | None:
        """The API key from ``api_key_file`` or ``api_key_env``; never from bdr.yaml itself."""
        if self.api_key_file:
            try:
                return Path(self.api_key_file).read_text().strip() or None
            except OSError as exc:
                raise ConfigError(
                    path=self.api_key_file, detail=f"cannot read API key file: {exc.strerror}"
                ) from exc
        return (os.environ.get(self.api_key_env) or None) if self.api_key_env else None


PROMETHEUS_RUNTIMES = ("process", "systemd", "command", "docker")


@dataclass(frozen=True, slots=True)
class PrometheusInstance:
    """One Prometheus server whose TSDB bdr backs up (snapshot admin API) and restores (``prometheus:``)."""

    name: str
    url: str = "http://127.0.0.1:9090"
    data_dir: str | None = None
    """``--storage.tsdb.path`` on this host; asked from the server (``/api/v1/status/flags``) when not set."""
    admin_api: bool = True
    """Whether the server runs with ``--web.enable-admin-api`` (the TSDB snapshot needs it); ``bdr lint`` checks it."""
    runtime: str = "process"
    """How bdr stops and starts it for a restore: ``process`` (started again exactly as it was launched),
    ``systemd`` (``unit``), ``command`` (``commands``), ``docker`` (``container``)."""
    start_args: Argv = ()
    """process runtime: the full ``prometheus`` argv to start it with when bdr never saw it run."""
    unit: str | None = None
    systemctl: Argv = ("systemctl",)
    commands: Commands = field(default_factory=dict)
    container: str | None = None
    log_file: str | None = None
    timeout: float = 120.0
    """How long a snapshot, a stop or a start (WAL replay) may take."""
    backup: bool = True

    def validate(self, path: str) -> None:
        """Raise :class:`ConfigError` naming the first invalid setting (called when the file is loaded)."""
        where = f"prometheus.{self.name}"
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise ConfigError(path=path, detail=f"{where}.url must be an http:// or https:// url, got {self.url!r}")
        needs = {"systemd": ("unit", "the unit that runs Prometheus (prometheus.service)"),
                 "docker": ("container", "the Prometheus container")}
        if self.runtime in needs and not getattr(self, needs[self.runtime][0]):
            key, what = needs[self.runtime]
            raise ConfigError(path=path, detail=f"{where}: runtime {self.runtime} needs {key}: {what}")
        if self.runtime == "command" and not (self.commands.get("start") and self.commands.get("stop")):
            raise ConfigError(path=path, detail=f"{where}: runtime command needs commands.start and commands.stop")
        unknown = sorted(set(self.commands) - set(COMMAND_NAMES))
        if unknown:
            raise ConfigError(path=path, detail=f"{where}.commands: unknown command(s) {', '.join(unknown)} "
                              f"(known: {', '.join(COMMAND_NAMES)})")


GRAFANA_RUNTIMES = ("systemd", "command", "docker")


@dataclass(frozen=True, slots=True)
class GrafanaInstance:
    """One Grafana whose ``grafana.db`` (SQLite), provisioning and grafana.ini bdr backs up (``grafana:``).

    ``url`` and a token (``token_file`` or ``token_env``: a service account token, never in
    bdr.yaml itself) turn on the JSON export of every dashboard through the HTTP API, and the
    single-dashboard restore (``bdr restore grafana SET --dashboard UID``).
    """

    name: str
    db_path: str = "/var/lib/grafana/grafana.db"
    config_file: str | None = None
    """grafana.ini (``/etc/grafana/grafana.ini``): backed up encrypted (it holds secret_key, the admin password)."""
    provisioning: str | None = None
    """The provisioning directory (``/etc/grafana/provisioning``): backed up encrypted (data sources hold passwords)."""
    url: str | None = None
    token_env: str | None = "GRAFANA_TOKEN"
    token_file: str | None = None
    runtime: str = "systemd"
    """How bdr stops and starts Grafana for a restore: ``systemd`` (``unit``), ``command`` (``commands``),
    ``docker`` (``container``)."""
    unit: str | None = "grafana-server.service"
    systemctl: Argv = ("systemctl",)
    commands: Commands = field(default_factory=dict)
    container: str | None = None
    timeout: float = 60.0
    """How long a stop, a start or an HTTP request may take (seconds)."""
    backup: bool = True

    def validate(self, path: str) -> None:
        """Raise :class:`ConfigError` naming the first invalid setting (called when the file is loaded)."""
        where = f"grafana.{self.name}"
        if not isinstance(self.db_path, str) or not self.db_path:
            raise ConfigError(path=path, detail=f"{where}.db_path must be the path of grafana.db")
        if self.url is not None and (not isinstance(self.url, str) or not self.url.startswith(("http://", "https://"))):
            raise ConfigError(path=path, detail=f"{where}.url must be an http:// or https:// url, got {self.url!r}")
        if self.runtime == "systemd" and not self.unit:
            raise ConfigError(path=path, detail=f"{where}: runtime systemd needs unit (grafana-server.service)")
        if self.runtime == "docker" and not self.container:
            raise ConfigError(path=path, detail=f"{where}: runtime docker needs container: the Grafana container")
        if self.runtime == "command" and not (self.commands.get("start") and self.commands.get("stop")):
            raise ConfigError(path=path, detail=f"{where}: runtime command needs commands.start and commands.stop "
                              "(and commands.status: exit 0 while Grafana runs)")
        if self.runtime == "command" and not self.commands.get("status") and not self.url:
            raise ConfigError(path=path, detail=f"{where}: runtime command needs commands.status (exit 0 while "
                              "Grafana runs) or url (its /api/health): bdr must see that Grafana stopped before it "
                              "swaps grafana.db")
        unknown = sorted(set(self.commands) - set(COMMAND_NAMES))
        if unknown:
            raise ConfigError(path=path, detail=f"{where}.commands: unknown command(s) {', '.join(unknown)} "
                              f"(known: {', '.join(COMMAND_NAMES)})")
        if self.token_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(self.token_env)):
            raise ConfigError(path=path, detail=f"{where}.token_env must name an environment variable (e.g. "
                              "GRAFANA_TOKEN), not hold the token: remove it from bdr.yaml and rotate it")

    def token(self) -> str | None:
        """The API token from ``token_file`` or ``token_env``; never from bdr.yaml itself."""
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip() or None
            except OSError as exc:
                raise ConfigError(path=self.token_file, detail=f"cannot read Grafana token file: {exc.strerror}") \
                    from exc
        return (os.environ.get(self.token_env) or None) if self.token_env else None


@dataclass(frozen=True, slots=True)
class FilesSource:
    """Configuration files and secrets: glob patterns relative to ``root``; ``secrets`` are always encrypted.

    A pattern names files (``docker-compose*.yml``, ``**/*.conf``) or a directory, taken whole
    (``monitoring/``). A file is a secret when its path or its name matches a ``secrets``
    pattern (so ``.env`` also marks ``services/api/.env`` inside a backed-up directory).
    ``exclude`` leaves matching paths or names out (``*.swp``, ``monitoring/data/``).
    """

    name: str = "config"
    root: str = "."
    paths: tuple[str, ...] = ("docker-compose*.yml", "nginx.conf", "redis.conf", "monitoring/")
    secrets: tuple[str, ...] = (".env",)
    exclude: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        """Raise :class:`ConfigError` naming the first invalid value (called when the file is loaded)."""
        if not isinstance(self.root, str) or not self.root:
            raise ConfigError(path=path, detail="files.root must be a directory path")
        for key in ("paths", "secrets", "exclude"):
            patterns = getattr(self, key)
            if not isinstance(patterns, tuple) or not all(isinstance(p, str) and p for p in patterns):
                raise ConfigError(path=path, detail=f"files.{key} must be a list of glob patterns, "
                                  "e.g. [docker-compose*.yml, monitoring/]")
            for pattern in patterns:
                parts = pattern.replace("\\", "/").split("/")
                if pattern.startswith(("/", "~")) or ".." in parts:
                    raise ConfigError(path=path, detail=f"files.{key}: {pattern!r} must be relative to files.root "
                                      "and stay inside it (no leading / or ~, no ..)")


@dataclass(frozen=True, slots=True)
class EncryptionSettings:
    """Where the key comes from: a key file, an env var holding the key, or a passphrase env var.

    Tried in that order (after ``--key-file``); the values name a file or a variable, never
    hold the key itself.
    """

    key_file: str | None = None
    key_env: str | None = "BDR_KEY"
    passphrase_env: str | None = "BDR_PASSPHRASE"

    def validate(self, path: str) -> None:
        """Raise :class:`ConfigError` for a value of the wrong kind, or a key pasted where a name belongs."""
        if self.key_file is not None and (not isinstance(self.key_file, str) or not self.key_file):
            raise ConfigError(path=path, detail="encryption.key_file must be the path of a key file "
                              "(bdr key generate PATH)")
        for key in ("key_env", "passphrase_env"):
            value = getattr(self, key)
            if value is None:
                continue
            if (not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value)
                    or re.fullmatch(r"[0-9A-Fa-f]{64}", value)):
                raise ConfigError(path=path, detail=f"encryption.{key} must name an environment variable "
                                  "(e.g. BDR_KEY), not hold a key or passphrase: remove the secret from "
                                  "bdr.yaml and rotate it")


SSE_MODES = ("AES256", "aws:kms")
STORAGE_CLASSES = (
    "STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE",
    "REDUCED_REDUNDANCY",
)
ARCHIVE_CLASSES = ("STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")
MAX_CONCURRENCY = 32
"""The most parts (or ranges) of one S3 object in flight at once (``remote.concurrency``)."""


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    """The off-site repository on S3 (or an S3-compatible store such as MinIO).

    Credentials never live here: boto3 finds them in the usual AWS chain (``AWS_PROFILE`` /
    ``profile``, ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY``, an instance or task role).
    """

    url: str | None = None
    """``s3://bucket/prefix``: where ``--remote`` points when given without a url."""
    endpoint_url: str | None = None
    """An S3-compatible endpoint (MinIO, Ceph); ``$AWS_ENDPOINT_URL_S3`` works too."""
    region: str | None = None
    profile: str | None = None
    """A profile of ``~/.aws/config``; the environment's credentials when not set."""
    sse: str | None = None
    """Server-side encryption on top of bdr's own: ``AES256`` or ``aws:kms`` (with ``kms_key_id``)."""
    kms_key_id: str | None = None
    storage_class: str | None = None
    """Storage class of data objects when uploaded (manifests always stay STANDARD)."""
    allow_plaintext: bool = False
    """Allow unencrypted off-site copies (off by default: ``--allow-plaintext`` per run)."""
    archive_after_days: int | None = 90
    """Lifecycle: move data objects to ``archive_class`` after this many days (null: never)."""
    archive_class: str = "GLACIER"
    expire_after_days: int | None = 365
    """Lifecycle: delete backup sets after this many days (null: never; ``bdr prune`` usually first)."""
    abort_uploads_after_days: int = 1
    """Lifecycle (``AbortIncompleteMultipartUpload``): discard the parts of multipart uploads a killed backup left
    after this many days (bdr's own next run aborts those of dead runs sooner)."""
    part_size_mib: int = 16
    """Multipart part size, and the size of each ranged GET of a download (5 MiB to 5 GiB)."""
    concurrency: int = 4
    """Parts of one object sent (or ranges fetched) at once, 1..32: memory is about concurrency * part size."""
    max_attempts: int = 5
    """Attempts per S3 request (botocore standard retry mode, exponential backoff)."""

    def validate(self, path: str) -> None:
        """Raise :class:`ConfigError` naming the first invalid value (called when the file is loaded)."""
        problems: list[str] = []
        if self.url is not None and not self.url.startswith("s3://"):
            problems.append(f"remote.url must start with s3://, got {self.url!r}")
        if self.sse not in (None, *SSE_MODES):
            problems.append(f"remote.sse must be one of {', '.join(SSE_MODES)}, got {self.sse!r}")
        if self.kms_key_id and self.sse != "aws:kms":
            problems.append("remote.kms_key_id needs remote.sse: aws:kms")
        if self.storage_class is not None and self.storage_class not in STORAGE_CLASSES:
            problems.append(f"remote.storage_class must be one of {', '.join(STORAGE_CLASSES)}")
        if self.archive_class not in ARCHIVE_CLASSES:
            problems.append(f"remote.archive_class must be one of {', '.join(ARCHIVE_CLASSES)}")
        for name in ("archive_after_days", "expire_after_days"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                problems.append(f"remote.{name} must be a whole number of days (or null), got {value!r}")
        if (
            isinstance(self.archive_after_days, int)
            and isinstance(self.expire_after_days, int)
            and self.expire_after_days <= self.archive_after_days
        ):
            problems.append("remote.expire_after_days must be greater than remote.archive_after_days")
        if not isinstance(self.abort_uploads_after_days, int) or self.abort_uploads_after_days < 1:
            problems.append("remote.abort_uploads_after_days must be a whole number of days >= 1")
        if not isinstance(self.part_size_mib, int) or not 5 <= self.part_size_mib <= 5120:
            problems.append(f"remote.part_size_mib must be between 5 and 5120, got {self.part_size_mib!r}")
        if not isinstance(self.concurrency, int) or isinstance(self.concurrency, bool) \
                or not 1 <= self.concurrency <= MAX_CONCURRENCY:
            problems.append(f"remote.concurrency must be between 1 and {MAX_CONCURRENCY}, got {self.concurrency!r}")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            problems.append(f"remote.max_attempts must be at least 1, got {self.max_attempts!r}")
        if problems:
            raise ConfigError(path=path, detail="; ".join(problems))


@dataclass(frozen=True, slots=True)
class Targets:
    """Recovery time and recovery point objectives, in seconds."""

    rto: Mapping[str, float] = field(
        default_factory=lambda: {
            "redis_restart": 60.0,
            "redis_local_restore": 300.0,
            "qdrant_restore": 900.0,
            "config_restore": 300.0,
            "metrics_restore": 1800.0,
            "dashboards_restore": 600.0,
            "full_system_restore": 1800.0,
            "offsite_restore": 3600.0,
        }
    )
    rpo: Mapping[str, float] = field(
        default_factory=lambda: {
            "sessions": 3600.0,
            "rbac": 86400.0,
            "vectors": 86400.0,
            "metrics": 7 * 86400.0,
            "dashboards": 86400.0,
        }
    )


RETENTION_KINDS = ("hourly", "daily", "weekly", "monthly", "yearly", "last", "within", "safety")
"""Rule kinds :mod:`bdr.repository.retention` knows: calendar periods (UTC), the newest N, an age, safety backups."""
RETENTION_LOCATIONS = ("local", "s3")


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """One row of the retention table: which sets of ``kind`` to keep, for how long, at which locations.

    A calendar rule (``hourly`` ... ``yearly``) keeps the newest set of each period of the
    ``keep`` window (``daily`` for 30 d: the newest set of each of the last 30 UTC days, today
    included); ``count`` limits it to that many periods that hold a set (restic's
    ``--keep-daily N``). ``last`` keeps the ``count`` newest sets, ``within`` every set younger
    than ``keep``, ``safety`` the safety backups taken before restores younger than ``keep`` (at
    every location). :mod:`bdr.repository.retention` documents the exact semantics.
    """

    kind: str
    keep: float
    locations: tuple[str, ...]
    count: int | None = None


DEFAULT_RETENTION: tuple[RetentionRule, ...] = (
    RetentionRule("hourly", 7 * 86400.0, ("local",)),
    RetentionRule("daily", 30 * 86400.0, ("local", "s3")),
    RetentionRule("weekly", 90 * 86400.0, ("s3",)),
    RetentionRule("monthly", 365 * 86400.0, ("s3",)),
)


SCHEDULE_KINDS = ("backup", "offsite", "prune", "verify", "drill")
"""What a ``schedule:`` entry runs (see :class:`ScheduleEntry`)."""
SCHEDULE_SOURCES = source_names(with_all=True)
SCHEDULE_OPTIONS = ("cron", "source", "remote", "restore_test", "compress", "wait_lock")


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One job of ``schedule:``: what runs, on which cron expression (``bdr schedule`` installs them).

    The key says what runs: a source (``redis``, ``qdrant``, ``config``: a backup of each of its
    instances; ``all``: the whole-system set), ``redis/NAME`` (one instance, on its own
    schedule), ``offsite`` or ``offsite/SOURCE`` (the off-site copy: ``bdr copy latest --remote``
    of the newest local set when the schedule also backs that source up locally, else ``bdr
    backup SOURCE --also-remote``: one snapshot in both places), ``prune``, ``verify`` (``bdr
    verify latest`` of every backed-up instance) and ``drill`` (the monthly ``bdr drill --live``).
    The value is a cron expression, or a mapping with ``cron`` and the job's options (``remote``,
    ``restore_test``, ``compress``, ``wait_lock``).
    """

    source: str
    """A backup's source (``redis`` ...; ``all``); the kind's name for the other jobs (``prune``)."""
    cron: str
    kind: str = "backup"
    instance: str | None = None
    """``redis/NAME``: the one instance this entry backs up (None: every instance of the source)."""
    name: str = ""
    """The key in bdr.yaml (``redis``, ``redis/cache``, ``offsite``, ``prune``)."""
    remote: str | None = None
    """offsite: the repository url (None: ``remote.url``)."""
    restore_test: bool = False
    """verify: also load each set into a temporary instance (``--restore-test``)."""
    compress: bool = False
    wait_lock: float | None = None
    """How long the job waits for the repository lock when another run holds it (None: ``bdr schedule`` picks
    the time until its next run, at most 1 h)."""

    @property
    def key(self) -> str:
        return self.name or self.source

    @property
    def takes_backup(self) -> bool:
        return self.kind in ("backup", "offsite")


DEFAULT_SCHEDULE: tuple[ScheduleEntry, ...] = (
    ScheduleEntry("redis", "*/30 * * * *"),
    ScheduleEntry("qdrant", "0 */12 * * *"),
    ScheduleEntry("config", "0 2 * * *"),
)
"""Every 30 minutes for Redis, not the runbook's hourly: a backup takes time, so an hourly one
leaves up to 1 h + its duration of sessions at risk, beyond the 1-hour RPO."""


@dataclass(frozen=True, slots=True)
class LintSettings:
    """``bdr lint``: estimates for what the repository cannot tell yet, rules to skip, files to leave out."""

    backup_duration: Mapping[str, float] = field(default_factory=lambda: {"default": 300.0})
    """How long a backup of each source takes (``redis: 2m``), used until the repository holds one to measure."""
    ignore: tuple[str, ...] = ()
    """Rule ids not to report (``BDR-C002``)."""
    exclude: tuple[str, ...] = ()
    """Glob patterns of files lint leaves out (``tests/*``)."""


ARCHIVE_DESTINATIONS = ("local", "s3")
"""Where ``archive.redis.NAME.to`` sends segments and bases: the repository, ``remote.url``."""


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    """``archive.redis.NAME``: continuous archiving of one Redis instance (``bdr archive redis --instance NAME``).

    The archiver is a replica of the instance: a full sync is its first base (a backup set),
    then the command stream is written in sealed segments, every ``segment_seconds`` or once
    ``segment_bytes`` are held, whichever comes first (:mod:`bdr.engines.redis.archive`).
    """

    name: str
    segment_seconds: float = 10.0
    """Seal the open segment at least this often (seconds): what a total loss can cost, plus its upload."""
    segment_bytes: Annotated[int, SIZE] = 16 << 20
    """...or as soon as it holds this many bytes of the stream."""
    to: Annotated[tuple[str, ...], ONE_OR_MORE] = ("local",)
    """``local`` (the repository), ``s3`` (``remote.url``, encrypted unless ``remote.allow_plaintext``), or both."""
    encrypt: bool = False
    """Encrypt segments and bases in the local repository too (the key of ``encryption:``)."""
    max_lag: float = 60.0
    """The archive lag (now minus the newest moment the repository can restore to) ``bdr status``, ``bdr lint``
    and the ArchiveLagging alert accept: the RPO of an archived instance."""
    keep: float | None = None
    """Delete segments older than this (a duration); None: back to the oldest base set retention keeps."""
    spool_dir: str | None = None
    """Local directory of the open segment and the archiver's state (default ``<repository>/journal/archive/
    redis-NAME``); it must be on this host."""

    def validate(self, path: str, config: Config) -> None:
        """Raise :class:`ConfigError` naming the first invalid value (called when the file is loaded)."""
        where = f"archive.redis.{self.name}"
        if self.name not in config.redis:
            raise ConfigError(path=path, detail=f"{where}: no redis instance {self.name!r} (known: "
                              f"{', '.join(config.redis) or 'none'})")
        if not isinstance(self.segment_seconds, float) or not 0.2 <= self.segment_seconds <= 3600:
            raise ConfigError(path=path, detail=f"{where}.segment_seconds must be between 0.2s and 1h")
        if not isinstance(self.segment_bytes, int) or not 64 << 10 <= self.segment_bytes <= 1 << 30:
            raise ConfigError(path=path, detail=f"{where}.segment_bytes must be between 64KiB and 1GiB")
        unknown = [t for t in self.to if t not in ARCHIVE_DESTINATIONS]
        if not self.to or unknown:
            raise ConfigError(path=path, detail=f"{where}.to must list {' and/or '.join(ARCHIVE_DESTINATIONS)}, "
                              f"got {list(self.to)!r}")
        if "s3" in self.to and not config.remote.url:
            raise ConfigError(path=path, detail=f"{where}.to names s3: set remote.url (s3://bucket/prefix)")
        if self.max_lag < self.segment_seconds:
            raise ConfigError(path=path, detail=f"{where}.max_lag ({self.max_lag:g}s) must be at least "
                              f"segment_seconds ({self.segment_seconds:g}s): a segment is sealed only that often")
        if self.keep is not None and self.keep <= 0:
            raise ConfigError(path=path, detail=f"{where}.keep must be a duration such as 7d")
        if self.spool_dir is not None and (not isinstance(self.spool_dir, str) or not self.spool_dir):
            raise ConfigError(path=path, detail=f"{where}.spool_dir must be a directory path")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole policy file, parsed and validated."""

    path: Path | None = None
    repository: str = "./backups"
    redis: Mapping[str, RedisInstance] = field(
        default_factory=lambda: {"production": RedisInstance(name="production")}
    )
    redis_default: str = "production"
    qdrant: Mapping[str, QdrantInstance] = field(
        default_factory=lambda: {"production": QdrantInstance(name="production")}
    )
    qdrant_default: str = "production"
    prometheus: Mapping[str, PrometheusInstance] = field(default_factory=dict)
    """``prometheus:``: the Prometheus servers whose metrics are backed up (none unless configured)."""
    prometheus_default: str = ""
    grafana: Mapping[str, GrafanaInstance] = field(default_factory=dict)
    """``grafana:``: the Grafana instances whose dashboards are backed up (none unless configured)."""
    grafana_default: str = ""
    files: FilesSource = field(default_factory=FilesSource)
    encryption: EncryptionSettings = field(default_factory=EncryptionSettings)
    remote: RemoteSettings = field(default_factory=RemoteSettings)
    targets: Targets = field(default_factory=Targets)
    retention: tuple[RetentionRule, ...] = DEFAULT_RETENTION
    schedule: tuple[ScheduleEntry, ...] = DEFAULT_SCHEDULE
    max_backup_age: Mapping[str, float] = field(default_factory=lambda: {"default": 86400.0})
    """Per source: how old the newest good backup may be before ``bdr status`` fails (and BackupTooOld fires)."""
    max_verify_age: Mapping[str, float] = field(default_factory=lambda: {"default": 7 * 86400.0})
    """Per source: how old the newest successful ``bdr verify`` may be (BackupVerificationStale)."""
    metrics_textfile: str | None = None
    """node_exporter textfile-collector file bdr rewrites after each backup, verify and drill."""
    metrics_state: str | None = None
    """Where bdr remembers failures and drill results for its metrics (default: beside metrics_textfile)."""
    lint: LintSettings = field(default_factory=LintSettings)
    owners: Mapping[str, str] = field(default_factory=dict)
    """Who fixes what a drill finds, per source (``redis``, ``qdrant``, ``config``, ``default``): remediation items."""
    drill: DrillSettings = field(default_factory=DrillSettings)
    """``bdr drill --live``: test targets, application checks, evidence retention, signing key (:mod:`bdr.drill`)."""
    archive: Mapping[str, ArchiveSettings] = field(default_factory=dict)
    """``archive.redis``: the Redis instances ``bdr archive redis`` archives continuously, by name."""

    @property
    def source_label(self) -> str:
        return str(self.path) if self.path else "embedded defaults"

    def base_dir(self) -> Path:
        """Relative paths in the file are relative to the file's directory."""
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, value: str) -> Path:
        candidate = Path(os.path.expanduser(value))
        return candidate if candidate.is_absolute() else self.base_dir() / candidate

    def repository_path(self) -> Path:
        return self.resolve(self.repository)

    def instance(self, section: str, name: str | None = None) -> Any:
        """Instance ``name`` of ``section`` (``redis``, ``grafana`` ...; default: the section's default instance);
        :class:`UnknownTarget` lists the known ones."""
        instances: Mapping[str, Any] = getattr(self, section)
        wanted = name or str(getattr(self, f"{section}_default"))
        try:
            return instances[wanted]
        except KeyError:
            known = ", ".join(instances) or f"none (add a {section}: section to bdr.yaml)"
            raise UnknownTarget(kind=section, name=wanted or "(none)", path=self.source_label, known=known) from None

    def redis_instance(self, name: str | None = None) -> RedisInstance:
        return cast(RedisInstance, self.instance("redis", name))

    def qdrant_instance(self, name: str | None = None) -> QdrantInstance:
        return cast(QdrantInstance, self.instance("qdrant", name))

    def grafana_instance(self, name: str | None = None) -> GrafanaInstance:
        return cast(GrafanaInstance, self.instance("grafana", name))

    def prometheus_instance(self, name: str | None = None) -> PrometheusInstance:
        return cast(PrometheusInstance, self.instance("prometheus", name))

    def archive_settings(self, name: str | None = None) -> ArchiveSettings:
        """``archive.redis.NAME`` of an instance (the default one when None); UnknownTarget when not archived."""
        wanted = name or self.redis_default
        try:
            return self.archive[wanted]
        except KeyError:
            raise UnknownTarget(kind="archived redis", name=wanted, path=self.source_label,
                                known=", ".join(self.archive) or "none (add archive: redis: NAME: {} to bdr.yaml)") \
                from None

    def archive_spool(self, name: str) -> Path:
        """The local spool directory of the archiver of Redis ``name``."""
        settings = self.archive.get(name)
        if settings is not None and settings.spool_dir:
            return self.resolve(settings.spool_dir)
        return self.repository_path() / "journal" / "archive" / f"redis-{name}"

    def max_age(self, source: str) -> float:
        return self.max_backup_age.get(source, self.max_backup_age.get("default", 86400.0))

    def max_verify(self, source: str) -> float:
        return self.max_verify_age.get(source, self.max_verify_age.get("default", 7 * 86400.0))
