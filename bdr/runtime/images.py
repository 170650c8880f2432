"""Container images bdr runs services and helpers from, found locally or built offline.

Production pulls ``redis:7-alpine`` and ``qdrant/qdrant`` from a registry; a machine
without registry access (an air-gapped DR site, CI behind a proxy, this lab) cannot. So
bdr looks for an image in this order:

1. the image named in bdr.yaml (``image:`` of the instance), when present locally;
2. the usual upstream image (``redis:7-alpine``, any ``qdrant/qdrant`` tag), when present;
3. for Redis only: ``bdr/redis:<version>``, **built offline** from the host's own Redis
   binaries (``redis-server``, ``redis-cli``, ``redis-check-aof``, ``redis-check-rdb``)
   and the shared libraries ``ldd`` says they need, plus a minimal ``/etc/passwd``, a
   ``/data`` directory owned by the ``redis`` user (uid 999, as upstream) and a few core
   tools (``sh``, ``rm``, ``tar`` ...) that helper containers use. The root file system is
   assembled as a tar here and handed to ``docker import``; no registry, no Dockerfile,
   no network.

Nothing here starts a container; :mod:`bdr.runtime.docker` does.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from bdr.errors import ImageBuildFailed, ImageNotFound

if TYPE_CHECKING:
    import docker

logger = logging.getLogger(__name__)

BUILT_REDIS_REPOSITORY = "bdr/redis"
UPSTREAM_REDIS_IMAGES = ("redis:7-alpine", "redis:7", "redis:alpine", "redis:latest")
QDRANT_REPOSITORY = "qdrant/qdrant"
REDIS_BINARIES = ("redis-server", "redis-cli", "redis-check-aof", "redis-check-rdb")
HELPER_TOOLS = ("sh", "rm", "mkdir", "ls", "cat", "chown", "chmod", "tar", "sleep", "sync")
"""Core tools copied into the built image: helper containers clear and inspect volumes with them."""
REDIS_UID = 999
REDIS_GID = 999
BIN_DIR = "usr/local/bin"
TOOL_DIR = "bin"
LABEL_BUILT_BY = "bdr.image.built-by"
LABEL_SOURCE = "bdr.image.source"
LABEL_VERSION = "bdr.image.redis-version"

_LDD_LINE = re.compile(r"^\s*(?:(?P<soname>\S+)\s+=>\s+)?(?P<path>/\S+|not found)\s*(?:\(0x[0-9a-f]+\))?\s*$")
_VERSION = re.compile(r"\bv=(?P<version>\d+\.\d+\.\d+)")


class EntryKind:
    """What a root file system entry is (plain strings: they go straight into tar headers)."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


@dataclass(frozen=True, slots=True)
class RootfsEntry:
    """One member of the image's root file system: a copy of a host file, a directory,
    a symlink, or a small generated file (``content``)."""

    path: str
    kind: str
    source: Path | None = None
    content: bytes | None = None
    target: str = ""
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What ``bdr images build`` made (or found already built)."""

    tag: str
    image_id: str
    version: str
    files: int
    rootfs_bytes: int
    seconds: float
    built: bool
    """False when the image was already there and ``force`` was not given."""

    def as_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "image_id": self.image_id, "version": self.version, "files": self.files,
                "rootfs_bytes": self.rootfs_bytes, "seconds": round(self.seconds, 3), "built": self.built}


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """A local image bdr can run a service from."""

    tag: str
    image_id: str
    size: int
    created: str
    service: str
    origin: str
    """``built`` (bdr images build) or ``upstream`` (pulled or loaded by the operator)."""
    labels: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "image_id": self.image_id, "size": self.size, "created": self.created,
                "service": self.service, "origin": self.origin}


# --- the root file system, from the host's binaries --------------------------------------------


def host_redis_version(binary: str | None = None) -> str:
    """``7.0.15`` from ``redis-server --version``."""
    path = binary or shutil.which("redis-server")
    if path is None:
        raise ImageBuildFailed(tag=BUILT_REDIS_REPOSITORY, detail="redis-server is not installed on this host "
                               "(apt-get install redis-server redis-tools)")
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ImageBuildFailed(tag=BUILT_REDIS_REPOSITORY, detail=f"cannot run {path} --version: {exc}") from exc
    match = _VERSION.search(out)
    if match is None:
        raise ImageBuildFailed(tag=BUILT_REDIS_REPOSITORY, detail=f"unexpected `redis-server --version`: {out!r}")
    return match.group("version")


def shared_libraries(binaries: Iterable[Path]) -> list[str]:
    """The absolute paths (as the loader looks them up) of every library the binaries need."""
    seen: dict[str, None] = {}
    for binary in binaries:
        try:
            proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ImageBuildFailed(tag=BUILT_REDIS_REPOSITORY, detail=f"cannot run ldd {binary}: {exc}") from exc
        text = proc.stdout + proc.stderr
        if "not a dynamic executable" in text or "statically linked" in text:
            continue
        if proc.returncode != 0:
            raise ImageBuildFailed(tag=BUILT_REDIS_REPOSITORY, detail=f"ldd {binary} failed: {text.strip()}")
        for line in proc.stdout.splitlines():
            match = _LDD_LINE.match(line)
            if match is None:
                continue
            if match.group("path") == "not found":
                raise ImageBuildFailed(tag=BUILT_REDIS_REPOSITORY,
                                       detail=f"{binary} needs {match.group('soname')}, which is not installed")
            seen.setdefault(match.group("path"), None)
    return list(seen)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


def _parents(path: str) -> list[str]:
    parts = PurePosixPath(path).parts[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def redis_rootfs(version: str, binaries: Sequence[str] = REDIS_BINARIES,
                 tools: Sequence[str] = HELPER_TOOLS) -> list[RootfsEntry]:
    """The plan of the image's root file system: what goes where, nothing read or written yet.

    Binaries that are the same program (Debian ships ``redis-server`` as a link to
    ``redis-check-rdb``, which picks its role from ``argv[0]``) are stored once and linked.
    """
    entries: dict[str, RootfsEntry] = {}

    def add(entry: RootfsEntry) -> None:
        for parent in _parents(entry.path):
            entries.setdefault(parent, RootfsEntry(parent, EntryKind.DIR, mode=0o755))
        entries[entry.path] = entry

    programs: list[Path] = []
    by_digest: dict[str, str] = {}
    for name in binaries:
        host = _which(name)
        if host is None:
            raise ImageBuildFailed(tag=f"{BUILT_REDIS_REPOSITORY}:{version}",
                                   detail=f"{name} is not on PATH (apt-get install redis-server redis-tools)")
        real = host.resolve()
        digest = _sha256(real)
        path = f"{BIN_DIR}/{name}"
        if digest in by_digest:
            add(RootfsEntry(path, EntryKind.SYMLINK, target=PurePosixPath(by_digest[digest]).name))
        else:
            by_digest[digest] = path
            add(RootfsEntry(path, EntryKind.FILE, source=real, mode=0o755))
            programs.append(real)
    for name in tools:
        host = _which(name)
        if host is None:
            logger.info("image build: %s not on this host, the image goes without it", name)
            continue
        real = host.resolve()
        add(RootfsEntry(f"{TOOL_DIR}/{name}", EntryKind.FILE, source=real, mode=0o755))
        programs.append(real)
    for library in shared_libraries(programs):
        path = library.lstrip("/")
        if path not in entries:
            add(RootfsEntry(path, EntryKind.FILE, source=Path(library).resolve(), mode=0o755))
    passwd = (f"root:x:0:0:root:/root:/bin/sh\nredis:x:{REDIS_UID}:{REDIS_GID}:redis:/data:/bin/false\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    group = f"root:x:0:\nredis:x:{REDIS_GID}:\nnogroup:x:65534:\n"
    about = (f"bdr/redis {version}: built by `bdr images build redis` from the host's Redis binaries "
             f"({', '.join(binaries)}) and their shared libraries.\n")
    for path, text in (("etc/passwd", passwd), ("etc/group", group), ("etc/bdr-image", about)):
        add(RootfsEntry(path, EntryKind.FILE, content=text.encode(), mode=0o644))
    add(RootfsEntry("data", EntryKind.DIR, mode=0o755, uid=REDIS_UID, gid=REDIS_GID))
    add(RootfsEntry("tmp", EntryKind.DIR, mode=0o1777))
    add(RootfsEntry("root", EntryKind.DIR, mode=0o700))
    add(RootfsEntry("usr/local/etc/redis", EntryKind.DIR, mode=0o755))
    return [entries[key] for key in sorted(entries)]


def write_rootfs(entries: Iterable[RootfsEntry], dest: Path) -> tuple[int, int]:
    """Write the plan as a tar at ``dest``; returns (members, bytes of file content)."""
    count = size = 0
    now = int(time.time())
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, now
            info.uname = info.gname = ""
            if entry.kind == EntryKind.DIR:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == EntryKind.SYMLINK:
                info.type, info.linkname = tarfile.SYMTYPE, entry.target
                tar.addfile(info)
            elif entry.content is not None:
                info.size = len(entry.content)
                tar.addfile(info, io.BytesIO(entry.content))
                size += info.size
            else:
                assert entry.source is not None
                info.size = entry.source.stat().st_size
                info.mtime = int(entry.source.stat().st_mtime)
                with entry.source.open("rb") as handle:
                    tar.addfile(info, handle)
                size += info.size
            count += 1
    return count, size


# --- the engine's side --------------------------------------------------------------------------


def built_redis_tag(version: str) -> str:
    return f"{BUILT_REDIS_REPOSITORY}:{version}"


def _image_id(client: docker.DockerClient, ref: str) -> str | None:
    import docker.errors

    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None


def build_redis_image(client: docker.DockerClient, *, force: bool = False, tag: str | None = None) -> BuildResult:
    """``bdr/redis:<host version>`` (or ``tag``) from the host's binaries, unless it exists (or ``force``)."""
    import docker.errors

    started = time.monotonic()
    version = host_redis_version()
    tag = tag or built_redis_tag(version)
    existing = _image_id(client, tag)
    if existing and not force:
        return BuildResult(tag=tag, image_id=existing, version=version, files=0, rootfs_bytes=0,
                           seconds=time.monotonic() - started, built=False)
    entries = redis_rootfs(version)
    changes = [
        "ENV PATH=/usr/local/bin:/usr/bin:/bin",
        "WORKDIR /data",
        "VOLUME /data",
        "EXPOSE 6379",
        "USER redis",
        'CMD ["redis-server"]',
        f'LABEL {LABEL_BUILT_BY}="bdr" {LABEL_SOURCE}="host-binaries" {LABEL_VERSION}="{version}"',
    ]
    with tempfile.TemporaryDirectory(prefix="bdr-image-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        try:
            files, size = write_rootfs(entries, rootfs)
        except OSError as exc:
            raise ImageBuildFailed(tag=tag, detail=f"cannot assemble the root file system: {exc}") from exc
        logger.info("importing %s: %d members, %d bytes", tag, files, size)
        repository, _, version_tag = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
        try:
            client.api.import_image(src=str(rootfs), repository=repository, tag=version_tag, changes=changes)
        except docker.errors.DockerException as exc:
            raise ImageBuildFailed(tag=tag, detail=f"docker import failed: {exc}") from exc
    image_id = _image_id(client, tag)
    if image_id is None:
        raise ImageBuildFailed(tag=tag, detail="docker import reported success but the image is not there")
    if existing and existing != image_id:  # the previous build lost its tag: drop it unless a container uses it
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(existing, noprune=False)
    return BuildResult(tag=tag, image_id=image_id, version=version, files=files, rootfs_bytes=size,
                       seconds=time.monotonic() - started, built=True)


def service_of_tags(tags: Sequence[str]) -> str | None:
    for tag in tags:
        repository = tag.rsplit(":", 1)[0]
        if repository in (BUILT_REDIS_REPOSITORY, "redis", "library/redis", "docker.io/library/redis"):
            return "redis"
        if repository.endswith(QDRANT_REPOSITORY):
            return "qdrant"
    return None


def list_images(client: docker.DockerClient) -> list[ImageInfo]:
    """Local images bdr can run Redis or Qdrant from, built ones and upstream ones."""
    found: list[ImageInfo] = []
    for image in client.images.list():
        tags = list(image.tags)
        service = service_of_tags(tags)
        if service is None:
            continue
        labels = dict(image.labels or {})
        origin = "built" if labels.get(LABEL_BUILT_BY) == "bdr" else "upstream"
        for tag in tags:
            found.append(ImageInfo(tag=tag, image_id=str(image.id), size=int(image.attrs.get("Size", 0)),
                                   created=str(image.attrs.get("Created", "")), service=service, origin=origin,
                                   labels=labels))
    return sorted(found, key=lambda info: (info.service, info.origin, info.tag))


def find_local(client: docker.DockerClient, candidates: Iterable[str]) -> str | None:
    """The first of ``candidates`` present on the engine."""
    for ref in candidates:
        if ref and _image_id(client, ref):
            return ref
    return None


def resolve_redis_image(client: docker.DockerClient, configured: str | None = None, *, build: bool = True) -> str:
    """The Redis image to run: the configured one, an upstream one, or the built one (built now
    when ``build`` and missing). A configured image that is absent is an error, not a fallback:
    the operator asked for that one."""
    if configured:
        if _image_id(client, configured):
            return configured
        raise ImageNotFound(ref=configured, hint="pull or load it (docker pull / docker load), or remove image: "
                            "from bdr.yaml to use redis:7-alpine or the image bdr builds offline")
    upstream = find_local(client, UPSTREAM_REDIS_IMAGES)
    if upstream:
        return upstream
    with contextlib.suppress(ImageBuildFailed):
        tag = built_redis_tag(host_redis_version())
        if _image_id(client, tag):
            return tag
    if not build:
        raise ImageNotFound(ref="redis:7-alpine", hint="load it (docker load) or run `bdr images build redis`")
    return build_redis_image(client).tag


def resolve_qdrant_image(client: docker.DockerClient, configured: str | None = None) -> str | None:
    """The configured Qdrant image, else any local ``qdrant/qdrant`` tag; None when there is none
    (bdr cannot build Qdrant offline)."""
    if configured:
        return configured if _image_id(client, configured) else None
    for image in client.images.list(name=QDRANT_REPOSITORY):
        if image.tags:
            return str(image.tags[0])
    return None
