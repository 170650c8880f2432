"""Data in Docker volumes: copy it out, put it back, check it, delete it.

These are the runbook's volume procedures, done through the engine's API instead of
``docker run ... alpine tar``:

- :func:`volume_backup`: the classic *volume backup*: stop the containers that use the
  volume, stream the volume's files out as a tar (plain, ``.tar.gz`` or ``.tar.zst`` by
  the file's suffix), start the containers again. Works for Redis and Qdrant volumes.
- :func:`volume_restore`: the reverse, into an existing or a fresh volume; the archive is
  checked member by member on the way (no absolute paths, no ``..``, no links out of the
  volume, no devices) and owners and modes are kept.
- :func:`run_in_volume`: run a tool (``redis-check-aof``, ``redis-check-rdb``) inside a
  container on the volume, for hosts without Redis tools.
- :func:`remove_volume`: the "all volumes deleted" disaster, on purpose.

Files move through *helper containers* (see :mod:`bdr.runtime.docker_engine`): the
engine's archive endpoints read and write a created container's mounts, so no tool is
needed in the image for copying. Clearing a directory runs ``rm`` in a helper, and every
write ends with ``sync`` in one, so a restored volume is on disk before a service starts.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import os
import stat
import tarfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import docker
import docker.errors
import zstandard
from docker.models.containers import Container

from bdr.errors import (
    CorruptArchive,
    ImageNotFound,
    NotWritable,
    ServiceError,
    UnsafeArchive,
    VolumeInUse,
    VolumeNotFound,
)
from bdr.repository.archive import open_tar_stream
from bdr.runtime.docker_engine import (
    HELPER_MOUNT,
    DataMount,
    Role,
    containers_using,
    docker_client,
    docker_errors,
    helper,
    host_readable,
    labels_for,
    require_ok,
    run_helper,
    volume_mount,
    wait_exited,
)
from bdr.runtime.images import resolve_redis_image
from bdr.storage.local import fsync_dir, translate_os_error

logger = logging.getLogger(__name__)

BLOCK = tarfile.BLOCKSIZE
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class VolumeArchive:
    """One volume copied to or from a tar file: what, where, how big, and what was stopped for it."""

    volume: str
    path: Path
    members: int
    data_bytes: int
    archive_bytes: int
    sha256: str
    seconds: float
    stopped: tuple[str, ...] = ()
    """Containers bdr stopped for the copy (and started again)."""

    def as_dict(self) -> dict[str, Any]:
        return {"volume": self.volume, "path": str(self.path), "members": self.members,
                "data_bytes": self.data_bytes, "archive_bytes": self.archive_bytes, "sha256": self.sha256,
                "seconds": round(self.seconds, 3), "stopped": list(self.stopped)}


# --- tar streams -----------------------------------------------------------------------------------


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (the engine's archive stream)."""

    def __init__(self, chunks: Iterable[bytes], tee: IO[bytes] | None = None) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self._tee = tee
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
            if self._tee is not None:
                self._tee.write(self._buffer)
            self.size += len(self._buffer)
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def safe_member_name(member: tarfile.TarInfo, strip: int = 0) -> str | None:
    """The member's path relative to the volume root; None for the root itself.

    Regular files, directories and symbolic links that stay inside the volume are allowed;
    anything else raises :class:`UnsafeArchive` before a byte of it is written.
    """
    path = PurePosixPath(member.name)
    if path.is_absolute() or member.name.startswith(("/", "\\")):
        raise UnsafeArchive(member=member.name, reason="absolute path")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(member=member.name, reason="path escapes the volume ('..')")
    parts = parts[strip:]
    if not parts:
        return None
    if member.issym():
        target = PurePosixPath(member.linkname)
        resolved = [*parts[:-1], *target.parts]
        depth = 0
        for part in resolved:
            depth += -1 if part == ".." else (0 if part in ("", ".") else 1)
            if depth < 0 or target.is_absolute():
                raise UnsafeArchive(member=member.name, reason=f"link points out of the volume ({member.linkname!r})")
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchive(member=member.name, reason="only files, directories and links are allowed in a volume")
    return "/".join(parts)


def tar_stream(members: Iterable[tuple[tarfile.TarInfo, IO[bytes] | None]]) -> Iterator[bytes]:
    """Serialise ``(header, content)`` pairs as a tar stream, one chunk at a time (constant memory)."""
    for info, content in members:
        yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        if info.isfile() and info.size:
            remaining = info.size
            while remaining:
                chunk = content.read(min(CHUNK, remaining)) if content is not None else b""
                if not chunk:
                    raise CorruptArchive(name=info.name, detail="file is shorter than its header says")
                remaining -= len(chunk)
                yield chunk
            if info.size % BLOCK:
                yield b"\0" * (BLOCK - info.size % BLOCK)
    yield b"\0" * (2 * BLOCK)


def directory_members(source: Path, uid: int, gid: int) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """Every file and directory under ``source`` as tar members owned by ``uid:gid``."""
    for root, dirs, files in os.walk(source):
        dirs.sort()
        base = Path(root)
        for name in [*dirs, *sorted(files)]:
            path = base / name
            st = path.lstat()
            info = tarfile.TarInfo(path.relative_to(source).as_posix())
            info.mode, info.mtime, info.uid, info.gid = stat.S_IMODE(st.st_mode), int(st.st_mtime), uid, gid
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                yield info, None
            elif stat.S_ISREG(st.st_mode):
                info.size = st.st_size
                with path.open("rb") as handle:
                    yield info, handle
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                yield info, None


def archive_members(tar: tarfile.TarFile, strip: int) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """Members of a volume archive, checked and renamed relative to the volume root."""
    for member in tar:
        name = safe_member_name(member, strip)
        if name is None:
            continue
        member.name = name
        member.pax_headers = {k: v for k, v in member.pax_headers.items() if k not in ("path", "linkpath")}
        yield member, tar.extractfile(member) if member.isfile() else None


# --- reading, clearing and writing a mount -------------------------------------------------------------


def mount_owner(container: Container, path: str = HELPER_MOUNT) -> tuple[int, int]:
    """uid and gid of the directory ``path`` in a (created) container: the first tar header it sends."""
    with docker_errors(f"read the owner of {path}"):
        chunks, _ = container.get_archive(f"{path}/.")
        reader = ChunkReader(chunks)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            first = tar.next()
    if first is None:
        return 0, 0
    return first.uid, first.gid


def export_mount(client: docker.DockerClient, image: str, mount: DataMount, dest: Path,
                 names: Sequence[str] = ()) -> list[str]:
    """Copy the files of ``mount`` (or only ``names`` in it) into ``dest``; the names copied.

    Missing names are skipped; ``dest`` must be empty or new. Links and special files are
    refused (a Redis or Qdrant data directory has none).
    """
    dest.mkdir(parents=True, exist_ok=True)
    copied: list[str] = []
    with helper(client, image, mount, read_only=True) as container:
        for name in names or (".",):
            rel = _plain_name(name) if name != "." else "."
            try:
                chunks, _ = container.get_archive(f"{HELPER_MOUNT}/{rel}")
            except docker.errors.NotFound:
                continue
            except docker.errors.DockerException as exc:
                with docker_errors(f"read {rel} from {mount.describe()}"):
                    raise exc
            _extract(ChunkReader(chunks), dest, f"{mount.source}/{rel}")
            copied.append(rel)
    return copied


def _extract(stream: ChunkReader, dest: Path, label: str) -> None:
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                rel = safe_member_name(member)
                if rel is None:
                    continue
                target = dest / rel
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    os.chmod(target, (member.mode & 0o777) | 0o700)
                elif member.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    assert source is not None
                    with target.open("wb") as out:
                        while chunk := source.read(CHUNK):
                            out.write(chunk)
                    os.chmod(target, member.mode & 0o777)
                else:
                    raise UnsafeArchive(member=member.name, reason="links are not copied out of a data volume")
    except (tarfile.TarError, EOFError) as exc:
        raise CorruptArchive(name=label, detail=str(exc)) from exc
    except OSError as exc:
        raise translate_os_error(exc, dest) from exc


def _plain_name(name: str) -> str:
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or any(p in ("..", ".") for p in parts):
        raise UnsafeArchive(member=name, reason="not a plain name inside the data directory")
    return "/".join(parts)


def clear_mount(client: docker.DockerClient, image: str | Sequence[str], mount: DataMount,
                names: Iterable[str] | None = None, timeout: float = 300.0) -> None:
    """Remove ``names`` from the mount (everything in it when None), in a helper container.

    ``image`` may be a list: the next one is tried when an image has no ``rm``/``sh``
    (a distroless Redis image, for instance).
    """
    if names is None:
        script = f"rm -rf {HELPER_MOUNT}/* {HELPER_MOUNT}/.[!.]* {HELPER_MOUNT}/..?*"
        command: list[str] = ["sh", "-c", script]
    else:
        targets = [f"{HELPER_MOUNT}/{_plain_name(n)}" for n in names]
        if not targets:
            return
        command = ["rm", "-rf", "--", *targets]
    images = [image] if isinstance(image, str) else list(image)
    for candidate in images:
        result = run_helper(client, candidate, mount, command, timeout=timeout)
        if result[0] != 127 or candidate == images[-1]:
            require_ok(result, f"clear {mount.describe()}", candidate)
            return
        logger.info("image %s has no %s; trying %s", candidate, command[0], images[images.index(candidate) + 1])


def sync_mount(client: docker.DockerClient, image: str, mount: DataMount, timeout: float = 300.0) -> None:
    """Flush what was written to the mount to disk: fsync of every file and directory when this
    process can reach them on the host, else ``sync`` in a helper (a warning if the image lacks it)."""
    root = host_readable(mount.host_path)
    if root is not None:
        for base, _, files in os.walk(root):
            for name in files:
                with contextlib.suppress(OSError):
                    fd = os.open(os.path.join(base, name), os.O_RDONLY | os.O_NOFOLLOW)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            with contextlib.suppress(OSError):
                fsync_dir(Path(base))
        return
    code, output = run_helper(client, image, mount, ["sync"], timeout=timeout)
    if code != 0:
        logger.warning("could not sync %s with image %s (%s); the engine's host flushes it later",
                       mount.describe(), image, output.strip()[:200])


def upload_members(client: docker.DockerClient, image: str, mount: DataMount,
                   members: Iterable[tuple[tarfile.TarInfo, IO[bytes] | None]], timeout: float = 300.0) -> None:
    """Stream tar members into the mount (a created helper), then sync."""
    with helper(client, image, mount) as container, docker_errors(f"write into {mount.describe()}"):
        if not container.put_archive(HELPER_MOUNT, tar_stream(members)):
            raise ServiceError(detail=f"the Docker engine did not accept the files for {mount.describe()}")
    sync_mount(client, image, mount, timeout)


def upload_dir(client: docker.DockerClient, image: str, mount: DataMount, source: Path,
               timeout: float = 300.0) -> None:
    """Copy the files under ``source`` into the mount, owned like the mount's root directory."""
    with helper(client, image, mount, read_only=True) as container:
        uid, gid = mount_owner(container)
    upload_members(client, image, mount, directory_members(source, uid, gid), timeout)


# --- volumes ----------------------------------------------------------------------------------------


def helper_image(client: docker.DockerClient, volume: str, image: str | None) -> str:
    """The image for helpers: the one given, that of a container using the volume, or a Redis image."""
    if image:
        return image
    for container in containers_using(client, volume):
        tags = container.image.tags if container.image is not None else []
        if tags:
            return str(tags[0])
    return resolve_redis_image(client)


def tool_images(client: docker.DockerClient, *preferred: str | None) -> list[str]:
    """Images to run ``rm``/``sh`` in, in order: ``preferred`` ones, then a Redis image (which has them)."""
    images = [image for image in preferred if image]
    with contextlib.suppress(ServiceError, ImageNotFound):
        images.append(resolve_redis_image(client))
    return list(dict.fromkeys(images))


@contextlib.contextmanager
def containers_stopped(client: docker.DockerClient, volume: str, stop: bool, timeout: float) -> Iterator[list[str]]:
    """Stop the running containers of ``volume`` (or refuse when ``stop`` is false); start them after."""
    running = [c for c in containers_using(client, volume) if c.status == "running"]
    if running and not stop:
        raise VolumeInUse(name=volume, containers=", ".join(c.name for c in running))
    stopped: list[Container] = []
    try:
        for container in running:
            logger.info("stopping container %s for a copy of volume %s", container.name, volume)
            with docker_errors(f"stop container {container.name}"):
                container.stop(timeout=int(timeout))
            stopped.append(container)
        yield [c.name for c in stopped]
    finally:
        for container in stopped:
            logger.info("starting container %s again", container.name)
            with docker_errors(f"start container {container.name}"):
                container.start()


def _opener(path: Path) -> Any:
    name = path.name
    if name.endswith((".tar.gz", ".tgz")):
        return lambda raw: gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6)
    if name.endswith(".tar.zst"):
        return lambda raw: zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)
    if name.endswith(".tar"):
        return None
    raise ServiceError(detail=f"{path}: a volume archive must end in .tar, .tar.gz, .tgz or .tar.zst")


class _HashingFile(io.RawIOBase):
    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._inner.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def volume_backup(volume: str, dest: Path | str, *, client: docker.DockerClient | None = None,
                  image: str | None = None, stop_containers: bool = True, timeout: float = 120.0) -> VolumeArchive:
    """Copy volume ``volume`` into the tar file ``dest`` (written atomically, fsynced).

    Running containers that use the volume are stopped for the copy and started again
    after (refused with :class:`VolumeInUse` when ``stop_containers`` is false), so the
    files are those of a stopped service, as the runbook's volume backup requires.
    """
    client = client or docker_client()
    dest = Path(dest)
    started = time.monotonic()
    mount = volume_mount(client, volume)
    image = helper_image(client, volume, image)
    compressor = _opener(dest)
    write_check(dest)
    tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        raw = tmp.open("wb")
    except OSError as exc:
        raise translate_os_error(exc, dest) from exc
    members = data_bytes = 0
    try:
        with raw, containers_stopped(client, volume, stop_containers, timeout) as stopped:
            hashing = _HashingFile(raw)
            sink: Any = compressor(hashing) if compressor else hashing
            with helper(client, image, mount, read_only=True) as container, \
                    docker_errors(f"read volume {volume}"):
                chunks, _ = container.get_archive(f"{HELPER_MOUNT}/.")
                reader = ChunkReader(chunks, tee=sink)
                try:
                    with tarfile.open(fileobj=reader, mode="r|") as tar:
                        for member in tar:
                            if safe_member_name(member) is None:
                                continue  # the volume's root directory itself
                            members += 1
                            data_bytes += member.size if member.isfile() else 0
                except (tarfile.TarError, EOFError) as exc:
                    raise CorruptArchive(name=f"volume {volume}", detail=str(exc)) from exc
                reader.drain()
            if compressor:
                sink.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise translate_os_error(exc, dest) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info("volume %s -> %s: %d members, %d bytes", volume, dest, members, data_bytes)
    return VolumeArchive(volume=volume, path=dest, members=members, data_bytes=data_bytes,
                         archive_bytes=hashing.size, sha256=hashing.digest.hexdigest(),
                         seconds=time.monotonic() - started, stopped=tuple(stopped))


def create_volume(client: docker.DockerClient, name: str, labels: dict[str, str] | None = None) -> str:
    with docker_errors(f"create volume {name}"):
        client.volumes.create(name=name, labels=labels_for(Role.VOLUME, labels))
    return name


def volume_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        return False
    except docker.errors.DockerException as exc:
        with docker_errors(f"look up volume {name}"):
            raise exc
    return True


def volume_restore(volume: str, source: Path | str, *, client: docker.DockerClient | None = None,
                   image: str | None = None, stop_containers: bool = True, create: bool = True,
                   clear: bool = True, strip_components: int = 0, timeout: float = 120.0) -> VolumeArchive:
    """Make volume ``volume`` hold the files of the tar ``source`` (.tar, .tar.gz or .tar.zst).

    The volume is created when missing (``create``) and emptied first (``clear``); the
    containers using it are stopped and started again as in :func:`volume_backup`.
    ``strip_components`` drops leading path parts, for archives made the runbook's way
    (``tar czf x.tar.gz /data`` stores ``data/...``: pass 1). The volume's root directory
    gets the owner and mode the archive recorded for it (a fresh volume belongs to root,
    and a Redis running as uid 999 could not write its next snapshot there).
    """
    client = client or docker_client()
    source = Path(source)
    started = time.monotonic()
    if not source.is_file():
        raise ServiceError(detail=f"{source}: no such archive")
    fresh = not volume_exists(client, volume)
    if fresh and not create:
        raise VolumeNotFound(name=volume)
    # Read the whole archive once before touching anything: a corrupt or unsafe one changes nothing.
    survey = _survey(source, strip_components)
    if fresh:
        create_volume(client, volume)
    mount = volume_mount(client, volume)
    image = helper_image(client, volume, image)
    counted = {"members": 0, "bytes": 0}

    def counting(items: Iterable[tuple[tarfile.TarInfo, IO[bytes] | None]]
                 ) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
        for info, content in items:
            counted["members"] += 1
            counted["bytes"] += info.size if info.isfile() else 0
            yield info, content

    with containers_stopped(client, volume, stop_containers, timeout) as stopped:
        if clear:
            clear_mount(client, tool_images(client, image), mount, timeout=timeout)
        with source.open("rb") as handle:
            tar = open_tar_stream(handle, source.name)
            try:
                upload_members(client, image, mount, counting(archive_members(tar, strip_components)), timeout)
            except (tarfile.TarError, EOFError, zstandard.ZstdError) as exc:
                raise CorruptArchive(name=source.name, detail=str(exc)) from exc
            finally:
                tar.close()
        root = survey.root or (survey.first if fresh else None)
        if root is not None:
            set_root(client, image, mount, *root, timeout=timeout)
    logger.info("%s -> volume %s: %d members", source, volume, counted["members"])
    return VolumeArchive(volume=volume, path=source, members=counted["members"], data_bytes=counted["bytes"],
                         archive_bytes=source.stat().st_size, sha256=survey.sha256,
                         seconds=time.monotonic() - started, stopped=tuple(stopped))


@dataclass(frozen=True, slots=True)
class _Survey:
    sha256: str
    root: tuple[int, int, int] | None
    """uid, gid and mode the archive records for the volume's root directory."""
    first: tuple[int, int, int] | None
    """uid and gid of the first member (mode 0755): the root's owner when the archive has no root entry."""


def _survey(source: Path, strip: int) -> _Survey:
    """Check every member of the archive and hash it, before the volume is touched."""
    root = first = None
    with source.open("rb") as raw:
        hashing = _HashingReader(raw)
        tar = open_tar_stream(hashing, source.name)  # type: ignore[arg-type]
        try:
            for member in tar:
                name = safe_member_name(member, strip)
                if name is None:
                    if member.isdir() and len([p for p in PurePosixPath(member.name).parts if p != "."]) == strip:
                        root = (member.uid, member.gid, member.mode & 0o7777)
                elif first is None:
                    first = (member.uid, member.gid, 0o755)
        except (tarfile.TarError, EOFError, zstandard.ZstdError) as exc:
            raise CorruptArchive(name=source.name, detail=str(exc)) from exc
        finally:
            tar.close()
        while hashing.read(CHUNK):
            pass
    return _Survey(hashing.digest.hexdigest(), root, first)


class _HashingReader(io.RawIOBase):
    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        self.digest.update(data)
        return len(data)


def set_root(client: docker.DockerClient, image: str, mount: DataMount, uid: int, gid: int, mode: int,
             timeout: float = 300.0) -> None:
    """Give the mount's root directory an owner and mode (on the host when reachable, else in a helper)."""
    root = host_readable(mount.host_path)
    if root is not None:
        os.chown(root, uid, gid)
        os.chmod(root, mode)
        return
    script = f"chown {int(uid)}:{int(gid)} {HELPER_MOUNT} && chmod {mode:o} {HELPER_MOUNT}"
    require_ok(run_helper(client, image, mount, ["sh", "-c", script], timeout=timeout),
               f"set the owner of {mount.describe()}", image)


def run_in_volume(image: str, volume: str, argv: Sequence[str], *, client: docker.DockerClient | None = None,
                  mount_at: str = "/data", read_only: bool = False, timeout: float = 300.0) -> tuple[int, str]:
    """Run ``argv`` in a throw-away container of ``image`` with ``volume`` at ``mount_at``.

    ``run_in_volume(image, "redis_data", ["redis-check-aof", "/data/appendonlydir/appendonly.aof.manifest"])``
    is the runbook's ``docker run --rm -v redis_data:/data redis:7-alpine redis-check-aof ...``.
    """
    client = client or docker_client()
    mount = volume_mount(client, volume, mount_at)
    with docker_errors(f"run {argv[0]} on volume {volume}"):
        container = client.containers.create(
            image, command=list(argv), entrypoint=[], user="0:0", network_mode="none",
            volumes=mount.binding(at=mount_at, read_only=read_only), labels=labels_for(Role.HELPER),
            working_dir=mount_at,
        )
    try:
        with docker_errors(f"run {argv[0]} on volume {volume}"):
            container.start()
        code = wait_exited(container, timeout)
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True, v=True)
    return code, output


def remove_volume(volume: str, *, client: docker.DockerClient | None = None,
                  with_containers: bool = False) -> list[str]:
    """Delete ``volume`` and everything in it; the containers removed with it.

    The engine refuses while any container (even a stopped one) uses the volume: with
    ``with_containers`` those are removed first, as ``docker compose down -v`` does.
    """
    client = client or docker_client()
    users = containers_using(client, volume)
    if users and not with_containers:
        raise VolumeInUse(name=volume, containers=", ".join(c.name for c in users))
    removed: list[str] = []
    with docker_errors(f"remove volume {volume}"):
        for container in users:
            container.remove(force=True)
            removed.append(str(container.name))
        try:
            client.volumes.get(volume).remove(force=True)
        except docker.errors.NotFound:
            raise VolumeNotFound(name=volume) from None
    logger.warning("removed volume %s (and containers: %s)", volume, ", ".join(removed) or "none")
    return removed


def write_check(path: Path) -> None:
    """Fail early (before stopping anything) when ``path``'s directory is not writable."""
    parent = path.parent
    if parent.exists() and not os.access(parent, os.W_OK):
        raise NotWritable(path=str(parent), detail="permission denied")


__all__ = [
    "VolumeArchive",
    "clear_mount",
    "create_volume",
    "export_mount",
    "remove_volume",
    "run_in_volume",
    "upload_dir",
    "volume_backup",
    "volume_exists",
    "volume_restore",
]
